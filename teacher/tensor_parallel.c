/* A teacher split over the GPUs of this host: the leader's wrapper model, the followers' loop,
 * and starting and stopping them (teacher/tensor_parallel.h says how the ranks work together). */
#include "teacher/tensor_parallel.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "core/backend_cuda.h"
#include "core/cli.h"
#include "core/error.h"
#include "core/fileio.h"
#include "teacher/forward_batch.h"
#ifdef R1_HAVE_CUDA
#include "core/cuda_comm.h"
#endif

/* tp == 1: one GPU (or the CPU), no group. */
static int open_alone(teacher_model **m, backend **be, const char *path, const char *device) {
    TRY(backend_open(be, device));
    const int rc = teacher_open(m, path, *be);
    if (rc) {
        (*be)->destroy(*be);
        *be = NULL;
    }
    return rc;
}

/* Checks what can be checked before any process starts: the device names a precision only and
 * the model is a deepseek_v3 directory that splits tp ways. *mode: "cuda" or "cuda-fp32". */
static int check_request(const char *path, const char *device, int tp, const char **mode) {
    *mode = strcmp(device, "cuda-fp32") == 0 ? "cuda-fp32"
            : strcmp(device, "cuda") == 0 || strcmp(device, "auto") == 0 ? "cuda"
                                                                        : NULL;
    if (!*mode) {
        err_fail(R1_EINPUT, "--device", "\"%s\" with --tp %d: the ranks run on GPUs 0..%d", device,
                 tp, tp - 1);
        return err_hint("name the precision only (cuda or cuda-fp32); choose the GPUs with "
                        "CUDA_VISIBLE_DEVICES");
    }
    if (!path_is_dir(path)) {
        err_fail(R1_EINPUT, path, "tensor parallelism needs a Hugging Face model directory");
        return err_hint("GGUF files run on one device (--tp 1)");
    }
    model_config cfg;
    TRY(model_config_load(&cfg, path));
    if (cfg.arch != ARCH_DEEPSEEK_V3) {
        err_fail(R1_EINPUT, path, "tensor parallelism (--tp %d) is implemented for deepseek_v3 "
                 "models; this is %s", tp, cfg.model_type);
        return err_hint("a dense teacher fits one GPU per replica: use --tp 1 and split the "
                        "prompts over GPUs with --rank/--world-size");
    }
    return deepseek_tp_check(&cfg, tp, path);
}

#ifndef R1_HAVE_CUDA

static int open_group(teacher_model **m, backend **be, const char *path, int tp,
                      const char *mode) {
    err_fail(R1_EINPUT, "--tp", "tensor parallelism needs CUDA, and this r1-distill was built "
             "without it");
    return err_hint("rebuild on a machine with nvcc, or use --tp 1");
}

int cmd_tp_rank(int argc, char **argv) {
    die(R1_EINPUT, "tp-rank", "this r1-distill was built without CUDA");
}

#else

/* What the leader tells its followers; each message is 4 ints, a forward's is followed by its
 * 3n + n_out ints of tokens, slots, positions and output rows. */
enum { CTL_FORWARD = 1, CTL_CACHE = 2, CTL_STOP = 3 };
/* A follower waits this long for the leader's NCCL id (the leader publishes it at once). */
#define JOIN_TIMEOUT_S 120.0

/* The control channel: a device buffer every rank broadcasts through. */
typedef struct {
    backend *be;
    int *dev;
    size_t cap; /* ints */
} ctl_chan;

static int *ctl_room(ctl_chan *c, size_t ints) {
    if (ints > c->cap) {
        if (c->dev) c->be->release(c->be, c->dev);
        c->cap = ints > 2 * c->cap ? ints : 2 * c->cap;
        if (c->cap < 64) c->cap = 64;
        c->dev = c->be->alloc(c->be, sizeof(int) * c->cap);
    }
    return c->dev;
}

static void ctl_send(ctl_chan *c, const int *host, size_t ints) {
    int *d = ctl_room(c, ints);
    c->be->upload(c->be, d, host, sizeof(int) * ints);
    backend_cuda_broadcast(c->be, d, sizeof(int) * ints);
}

static void ctl_recv(ctl_chan *c, int *host, size_t ints) {
    int *d = ctl_room(c, ints);
    backend_cuda_broadcast(c->be, d, sizeof(int) * ints);
    c->be->download(c->be, host, d, sizeof(int) * ints);
}

static void ctl_free(ctl_chan *c) {
    if (c->dev) c->be->release(c->be, c->dev);
    c->dev = NULL;
    c->cap = 0;
}

/* Every rank says whether its model loaded; 1 when all did. A collective: every rank calls it
 * once, loaded or not. */
static int all_loaded(backend *be, int ok) {
    const float mine = ok ? 0.0f : 1.0f;
    float failed;
    float *d = be->alloc(be, sizeof(float));
    be->upload(be, d, &mine, sizeof(float));
    be->all_reduce(be, d, 1);
    be->download(be, &failed, d, sizeof(float));
    be->release(be, d);
    return failed == 0.0f;
}

/* ---- the follower -------------------------------------------------------------------------- */

static const char *f_model, *f_device, *f_id_file;
static int64_t f_rank, f_tp;

static const cli_opt tp_rank_opts[] = {
    {"model", OPT_STRING, &f_model, NULL, CLI_REQUIRED, "DIR", "the model directory"},
    {"device", OPT_STRING, &f_device, NULL, CLI_REQUIRED, "DEV", "cuda:N or cuda-fp32:N"},
    {"rank", OPT_INT, &f_rank, NULL, CLI_REQUIRED, "R", "this rank (1..tp-1)"},
    {"tp", OPT_INT, &f_tp, NULL, CLI_REQUIRED, "N", "ranks in the group"},
    {"id-file", OPT_STRING, &f_id_file, NULL, CLI_REQUIRED, "FILE", "the leader's NCCL id file"},
};

static const cli_spec tp_rank_spec = {
    .command = "tp-rank",
    .summary = "A follower rank of a tensor-parallel teacher (started by --tp; not for users).",
    .opts = tp_rank_opts,
    .n_opts = sizeof tp_rank_opts / sizeof *tp_rank_opts,
};

/* Makes the leader's calls on this rank's shard until it says stop. */
static int follow(teacher_model *m, ctl_chan *c) {
    int *host = NULL;
    size_t cap = 0;
    for (;;) {
        int hdr[4];
        ctl_recv(c, hdr, 4);
        if (hdr[0] == CTL_STOP) break;
        if (hdr[0] == CTL_CACHE) {
            TRY(m->cache_init(m, hdr[1], hdr[2]));
            continue;
        }
        CHECK(hdr[0] == CTL_FORWARD && hdr[1] > 0 && hdr[2] >= 0);
        const int n = hdr[1], n_out = hdr[2];
        const size_t k = 3 * (size_t)n + (size_t)n_out;
        if (k > cap) {
            cap = k;
            host = xrealloc(host, sizeof(int) * cap);
        }
        ctl_recv(c, host, k); /* forward_batch_pack's layout */
        const token_layout tl = {.n = n, .slot = host + n, .pos = host + 2 * n};
        const int rc = m->forward(m, host, &tl, host + 3 * n, n_out, NULL);
        if (rc) {
            free(host);
            return rc;
        }
    }
    free(host);
    return R1_OK;
}

int cmd_tp_rank(int argc, char **argv) {
    cli_parse(&tp_rank_spec, argc, argv, NULL, NULL);
    static char name[64];
    snprintf(name, sizeof name, "tensor-parallel rank %d", (int)f_rank);
    err_set_command(name);
    if (f_tp < 2 || f_rank < 1 || f_rank >= f_tp) die(R1_EINPUT, "--rank", "rank %lld of %lld",
                                                      (long long)f_rank, (long long)f_tp);
    backend *be;
    if (backend_open(&be, f_device)) err_exit();
    cuda_comm *comm;
    if (cuda_comm_create(&comm, (int)f_rank, (int)f_tp, f_id_file, JOIN_TIMEOUT_S)) err_exit();
    backend_cuda_join(be, comm);
    teacher_model *m = NULL;
    int rc = teacher_open(&m, f_model, be);
    if (rc) err_print();
    ctl_chan c = {.be = be};
    if (all_loaded(be, rc == 0)) {
        rc = follow(m, &c);
        if (rc) err_print();
    } else { /* some rank failed: wait for the leader's stop, so that it sees who failed */
        int hdr[4];
        do ctl_recv(&c, hdr, 4);
        while (hdr[0] != CTL_STOP);
        if (!rc) rc = R1_ERUNTIME;
    }
    ctl_free(&c);
    teacher_close(m);
    be->sync(be);
    cuda_comm_destroy(comm);
    be->destroy(be);
    return rc;
}

/* ---- the leader ---------------------------------------------------------------------------- */

typedef struct {
    teacher_model base;      /* first: a teacher_model * is a tp_leader * */
    teacher_model *inner;    /* rank 0's shard */
    cuda_comm *comm;
    ctl_chan ctl;
    int *host;               /* a forward's message, packed */
    size_t host_cap;
    int tp;
    pid_t *pid;              /* [tp] followers (pid[0] unused); 0 once reaped */
    atomic_int stopping;     /* followers may now exit */
    pthread_t watchdog;
    int watching;
    char *dir;               /* the rendezvous directory */
} tp_leader;

/* Polls the followers; one that exits before the leader stops it ends the leader, whose
 * collectives would otherwise wait for it forever. Returns once all have exited. */
static void *watch_followers(void *arg) {
    tp_leader *L = arg;
    for (;;) {
        int live = 0;
        for (int r = 1; r < L->tp; r++) {
            if (!L->pid[r]) continue;
            int st;
            const pid_t p = waitpid(L->pid[r], &st, WNOHANG);
            if (p == 0 || (p < 0 && errno == EINTR)) {
                live++;
                continue;
            }
            L->pid[r] = 0;
            if (atomic_load(&L->stopping)) continue;
            if (WIFSIGNALED(st))
                fprintf(stderr, "r1-distill: tensor-parallel rank %d (GPU %d) was killed by signal "
                        "%d\n", r, r, WTERMSIG(st));
            else
                fprintf(stderr, "r1-distill: tensor-parallel rank %d (GPU %d) exited with status "
                        "%d (its message is above)\n", r, r, WIFEXITED(st) ? WEXITSTATUS(st) : -1);
            fprintf(stderr, "hint: the other ranks cannot go on without it; whatever was written "
                    "is kept, and a rerun resumes\n");
            _exit(R1_ERUNTIME);
        }
        if (!live) return NULL;
        const struct timespec ts = {0, 50 * 1000000L};
        nanosleep(&ts, NULL);
    }
}

static pid_t start_follower(int rank, int tp, const char *path, const char *mode,
                            const char *id_file) {
    char dev[32], r[16], t[16];
    snprintf(dev, sizeof dev, "%s:%d", mode, rank);
    snprintf(r, sizeof r, "%d", rank);
    snprintf(t, sizeof t, "%d", tp);
    char *const argv[] = {"r1-distill", "tp-rank", "--model", (char *)path, "--device", dev,
                          "--rank", r, "--tp", t, "--id-file", (char *)id_file, NULL};
    const pid_t parent = getpid();
    fflush(stdout);
    fflush(stderr);
    const pid_t pid = fork();
    if (pid != 0) return pid;
    /* the follower: gone with the leader (even one killed with -9); Ctrl-C is the leader's */
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(R1_ERUNTIME);
    signal(SIGINT, SIG_IGN);
    signal(SIGTERM, SIG_IGN);
    execv("/proc/self/exe", argv);
    fprintf(stderr, "r1-distill: cannot start tensor-parallel rank %d: %s\n", rank,
            strerror(errno));
    _exit(R1_ERUNTIME);
}

/* Ends the followers and frees what the leader holds besides its model and backend. `hard`:
 * kill them (they may be waiting for a leader that will never join); otherwise they have been
 * told to stop. */
static void end_followers(tp_leader *L, int hard) {
    atomic_store(&L->stopping, 1);
    if (hard)
        for (int r = 1; r < L->tp; r++)
            if (L->pid[r] > 0) kill(L->pid[r], SIGKILL);
    if (L->watching) pthread_join(L->watchdog, NULL);
    L->watching = 0;
    if (L->dir) {
        char *id = path_join(L->dir, "nccl-id");
        unlink(id);
        free(id);
        rmdir(L->dir);
        free(L->dir);
        L->dir = NULL;
    }
    free(L->pid);
    L->pid = NULL;
}

static int leader_forward(teacher_model *tm, const int *tokens, const token_layout *tl,
                          const int *out_rows, int n_out, float *logits) {
    tp_leader *L = (tp_leader *)tm;
    TRY(forward_batch_check(L->inner, tokens, tl, out_rows, n_out));
    const int n = tl->n;
    const int hdr[4] = {CTL_FORWARD, n, n_out, 0};
    const size_t k = 3 * (size_t)n + (size_t)n_out;
    if (k > L->host_cap) {
        L->host_cap = k;
        L->host = xrealloc(L->host, sizeof(int) * k);
    }
    ctl_send(&L->ctl, hdr, 4);
    ctl_send(&L->ctl, L->host, forward_batch_pack(L->host, tokens, tl, out_rows, n_out));
    const int rc = L->inner->forward(L->inner, tokens, tl, out_rows, n_out, logits);
    tm->logits = L->inner->logits;
    return rc;
}

static int leader_cache_init(teacher_model *tm, int slots, int len) {
    tp_leader *L = (tp_leader *)tm;
    const int hdr[4] = {CTL_CACHE, slots, len, 0};
    ctl_send(&L->ctl, hdr, 4);
    TRY(L->inner->cache_init(L->inner, slots, len));
    tm->cache_slots = L->inner->cache_slots;
    tm->cache_len = L->inner->cache_len;
    return R1_OK;
}

static size_t leader_cache_bytes(const teacher_model *tm) {
    const tp_leader *L = (const tp_leader *)tm;
    return L->inner->cache_bytes_per_token(L->inner);
}

/* Tells the followers to stop and leaves the group with them: NCCL's communicator teardown
 * waits for every rank, so the leader tears down its own before it waits for their exit. */
static void stop_group(tp_leader *L, backend *be) {
    const int hdr[4] = {CTL_STOP, 0, 0, 0};
    ctl_send(&L->ctl, hdr, 4);
    be->sync(be);
    atomic_store(&L->stopping, 1);
    ctl_free(&L->ctl);
    cuda_comm_destroy(L->comm);
    L->comm = NULL;
    end_followers(L, 0);
}

static void leader_destroy(teacher_model *tm) {
    tp_leader *L = (tp_leader *)tm;
    stop_group(L, tm->be);
    teacher_close(L->inner);
    free(L->host);
}

/* Ranks 1..tp-1 started, rank 0 here: tp checked GPUs, every shard loaded. */
static int open_group(teacher_model **m, backend **be, const char *path, int tp,
                      const char *mode) {
    int visible = 0;
    TRY(backend_cuda_probe(0, &visible));
    if (visible < tp) {
        err_fail(R1_EINPUT, "--tp", "%d ranks need %d GPUs; %d %s visible", tp, tp, visible,
                 visible == 1 ? "is" : "are");
        return err_hint("check nvidia-smi and CUDA_VISIBLE_DEVICES");
    }

    tp_leader *L = xcalloc(1, sizeof *L);
    L->tp = tp;
    L->pid = xcalloc((size_t)tp, sizeof *L->pid);
    L->dir = dir_make_temp("r1-tp-");
    if (!L->dir) {
        free(L->pid);
        free(L);
        return err_status();
    }
    char *id_file = path_join(L->dir, "nccl-id");
    int rc = R1_OK;
    for (int r = 1; r < tp && !rc; r++) {
        L->pid[r] = start_follower(r, tp, path, mode, id_file);
        if (L->pid[r] < 0) {
            L->pid[r] = 0;
            rc = err_fail(R1_ERUNTIME, "--tp", "cannot start rank %d: %s", r, strerror(errno));
        }
    }
    if (!rc) L->watching = pthread_create(&L->watchdog, NULL, watch_followers, L) == 0;
    char dev[32];
    snprintf(dev, sizeof dev, "%s:0", mode);
    if (!rc) rc = backend_open(be, dev);
    if (!rc) rc = cuda_comm_create(&L->comm, 0, tp, id_file, JOIN_TIMEOUT_S);
    free(id_file);
    if (rc) {
        end_followers(L, 1);
        if (*be) (*be)->destroy(*be);
        *be = NULL;
        free(L);
        return rc;
    }
    backend_cuda_join(*be, L->comm);
    L->ctl.be = *be;
    rc = teacher_open(&L->inner, path, *be);
    const int ok = all_loaded(*be, rc == 0);
    if (!ok) { /* stop everyone; the failing ranks have said why */
        stop_group(L, *be);
        teacher_close(L->inner);
        (*be)->destroy(*be);
        *be = NULL;
        free(L);
        if (!rc)
            rc = err_fail(R1_ERUNTIME, path, "a tensor-parallel rank could not load its shard "
                          "(its message is above)");
        return rc;
    }
    L->base.cfg = L->inner->cfg;
    L->base.path = xstrdup(L->inner->path);
    L->base.be = *be;
    L->base.forward = leader_forward;
    L->base.cache_init = leader_cache_init;
    L->base.cache_bytes_per_token = leader_cache_bytes;
    L->base.destroy = leader_destroy;
    *m = &L->base;
    return R1_OK;
}

#endif /* R1_HAVE_CUDA */

int teacher_open_device(teacher_model **m, backend **be, const char *path, const char *device,
                        int tp) {
    *m = NULL;
    *be = NULL;
    if (tp < 1 || tp > 64) return err_fail(R1_EINPUT, "--tp", "%d is not 1..64", tp);
    if (tp == 1) return open_alone(m, be, path, device);
    const char *mode;
    TRY(check_request(path, device, tp, &mode));
    return open_group(m, be, path, tp, mode);
}
