/* Starting a data-parallel training run: one process per GPU.
 *
 * `train --gpus N` forks N workers on this host, worker i on GPU i, and hands them a fresh
 * rendezvous directory. Under mpirun or srun the launcher has started the processes already:
 * each finds its rank in the environment and they meet through an id file in a directory they
 * all see (--rendezvous, default --out), named after the job so that an old file from another
 * job is never read. No MPI library is involved; NCCL does the talking (core/cuda_comm.h). */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/error.h"
#include "core/fileio.h"
#include "core/hash.h"
#include "student/train.h"

/* A non-negative integer environment variable, or -1. */
static int env_int(const char *name) {
    const char *v = getenv(name);
    if (!v || !*v) return -1;
    char *end;
    long x = strtol(v, &end, 10);
    return *end || x < 0 || x > (1 << 20) ? -1 : (int)x;
}

static const char *env_str(const char *name) {
    const char *v = getenv(name);
    return v && *v ? v : NULL;
}

int train_dist_from_env(train_dist *d, const char **launcher) {
    /* (rank, size, local rank) as Open MPI, Slurm's srun and MPICH's Hydra export them. Slurm's
     * step size, not the allocation's: a batch script itself is not one of the step's tasks. */
    static const struct {
        const char *who, *rank, *size, *local;
    } k[] = {
        {"mpirun (Open MPI)", "OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE",
         "OMPI_COMM_WORLD_LOCAL_RANK"},
        {"srun", "SLURM_PROCID", "SLURM_STEP_NUM_TASKS", "SLURM_LOCALID"},
        {"mpiexec (Hydra)", "PMI_RANK", "PMI_SIZE", "MPI_LOCALRANKID"},
    };
    memset(d, 0, sizeof *d);
    d->n_ranks = 1;
    d->gpu = -1;
    for (size_t i = 0; i < sizeof k / sizeof *k; i++) {
        const int rank = env_int(k[i].rank), size = env_int(k[i].size);
        if (rank < 0 || size < 1) continue;
        if (rank >= size)
            return err_fail(R1_EINPUT, k[i].rank, "rank %d is not below the %d processes of %s",
                            rank, size, k[i].size);
        const int local = env_int(k[i].local);
        d->rank = rank;
        d->n_ranks = size;
        d->local_rank = local >= 0 ? local : rank;
        if (launcher) *launcher = k[i].who;
        return R1_OK;
    }
    return R1_OK;
}

char *train_rendezvous_file(const char *dir) {
    /* the job's identity, so every rank of this job (and none of another) picks the same name */
    const char *slurm_job = env_str("SLURM_JOB_ID"), *slurm_step = env_str("SLURM_STEP_ID");
    const char *key = env_str("R1_JOB_ID");
    char buf[160];
    if (!key && slurm_job) {
        snprintf(buf, sizeof buf, "%s.%s", slurm_job, slurm_step ? slurm_step : "0");
        key = buf;
    }
    if (!key) key = env_str("OMPI_MCA_ess_base_jobid");
    if (!key) key = env_str("OMPI_MCA_orte_ess_jobid");
    if (!key) key = env_str("PMIX_NAMESPACE");
    if (!key) key = "default";
    char name[200];
    snprintf(name, sizeof name, "r1-nccl-id.%s", key);
    for (char *p = name; *p; p++) /* a namespace may hold characters a file name should not */
        if (*p == '/' || *p == ' ') *p = '_';
    return path_join(dir, name);
}

void train_host_entry(float *entry, const char *host, size_t need_bytes) {
    const uint64_t h = hash_fnv1a64(host, strlen(host));
    entry[0] = (float)(h & 0xfffff);
    entry[1] = (float)(h >> 44);
    entry[2] = (float)((need_bytes + ((size_t)1 << 20) - 1) >> 20);
}

double train_host_need(const float *v, int n_ranks, int me, int *sharing) {
    const float *mine = v + (size_t)TRAIN_HOST_ENTRY * (size_t)me;
    double need = 0;
    *sharing = 0;
    for (int r = 0; r < n_ranks; r++) {
        const float *e = v + (size_t)TRAIN_HOST_ENTRY * (size_t)r;
        if (e[0] == mine[0] && e[1] == mine[1]) {
            need += (double)e[2] * 1048576.0;
            (*sharing)++;
        }
    }
    return need;
}

int train_run_local_gpus(const train_args *a, int n) {
    char *dir = dir_make_temp("r1-train-");
    if (!dir) return err_status();
    char *id_file = path_join(dir, "nccl-id");
    fflush(stdout);
    fflush(stderr);
    pid_t *pid = xcalloc((size_t)n, sizeof *pid);
    double *rss = xcalloc((size_t)n, sizeof *rss); /* each rank's peak, MiB */
    int started = 0;
    for (; started < n; started++) {
        pid[started] = fork();
        if (pid[started] < 0) break;
        if (pid[started] == 0) {
            /* the worker: rank i on GPU i; rank 0 speaks for the run */
            train_args c = *a;
            c.dist = (train_dist){.rank = started, .n_ranks = n, .local_rank = started,
                                  .gpu = started, .id_file = id_file};
            if (started > 0) {
                static char cmd[48];
                snprintf(cmd, sizeof cmd, "train (rank %d)", started);
                err_set_command(cmd);
            }
            int rc = train_run(&c);
            if (rc) err_print();
            fflush(stdout);
            fflush(stderr);
            _exit(rc);
        }
    }
    int rc = R1_OK, left = started;
    if (started < n) {
        rc = err_fail(R1_ERUNTIME, "--gpus", "cannot start worker %d: %s", started,
                      strerror(errno));
        for (int i = 0; i < started; i++) kill(pid[i], SIGTERM);
    }
    /* wait for all; the first failure stops the others (they would wait for it forever) */
    while (left > 0) {
        int st;
        struct rusage ru;
        pid_t p = wait4(-1, &st, 0, &ru);
        if (p < 0) {
            if (errno == EINTR) continue;
            break;
        }
        int i = 0;
        while (i < started && pid[i] != p) i++;
        if (i == started) continue;
        pid[i] = 0;
        rss[i] = (double)ru.ru_maxrss / 1024.0; /* Linux reports KiB */
        left--;
        const int code = WIFEXITED(st) ? WEXITSTATUS(st) : R1_ERUNTIME;
        if (code != 0 && !rc) {
            rc = code == R1_EINPUT ? R1_EINPUT : R1_ERUNTIME;
            if (!WIFEXITED(st))
                err_fail(rc, "--gpus", "rank %d was killed by signal %d", i, WTERMSIG(st));
            else
                err_fail(rc, "--gpus", "rank %d failed (its message is above)", i);
            for (int j = 0; j < started; j++)
                if (pid[j] > 0) kill(pid[j], SIGTERM);
        }
    }
    /* host memory is what ranks sharing a host run out of first; the pages of the mapped
     * checkpoint count in each rank's figure, though the host holds them once */
    if (!rc) {
        fprintf(stderr, "peak RSS per rank:");
        for (int i = 0; i < n; i++) fprintf(stderr, " %.0f%s", rss[i], i + 1 < n ? "," : " MiB\n");
    }
    free(rss);
    free(pid);
    unlink(id_file);
    rmdir(dir);
    free(dir);
    free(id_file);
    return rc;
}
