/* Ranks from launcher environments and rendezvous file names (student/train_launch.c). */
#include <stdlib.h>

#include "core/error.h"
#include "student/train.h"
#include "tests/unit/testing.h"

static const char *const vars[] = {
    "OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_LOCAL_RANK", "SLURM_PROCID",
    "SLURM_STEP_NUM_TASKS", "SLURM_LOCALID", "SLURM_NTASKS", "SLURM_JOB_ID", "SLURM_STEP_ID",
    "PMI_RANK", "PMI_SIZE", "MPI_LOCALRANKID", "R1_JOB_ID", "OMPI_MCA_ess_base_jobid",
    "OMPI_MCA_orte_ess_jobid", "PMIX_NAMESPACE"};

static void clear_env(void) {
    for (size_t i = 0; i < sizeof vars / sizeof *vars; i++) unsetenv(vars[i]);
}

static void test_alone(void) {
    clear_env();
    train_dist d;
    const char *who = NULL;
    EXPECT_EQ_INT(train_dist_from_env(&d, &who), R1_OK);
    EXPECT_EQ_INT(d.n_ranks, 1);
    EXPECT_EQ_INT(d.rank, 0);
    EXPECT_EQ_INT(d.gpu, -1);
    EXPECT(who == NULL);
    /* a Slurm batch script is not a task of a step: the allocation's size alone is not a job */
    setenv("SLURM_NTASKS", "4", 1);
    setenv("SLURM_PROCID", "0", 1);
    EXPECT_EQ_INT(train_dist_from_env(&d, NULL), R1_OK);
    EXPECT_EQ_INT(d.n_ranks, 1);
}

static void test_launchers(void) {
    clear_env();
    train_dist d;
    const char *who = NULL;
    setenv("OMPI_COMM_WORLD_RANK", "5", 1);
    setenv("OMPI_COMM_WORLD_SIZE", "8", 1);
    setenv("OMPI_COMM_WORLD_LOCAL_RANK", "1", 1);
    EXPECT_EQ_INT(train_dist_from_env(&d, &who), R1_OK);
    EXPECT_EQ_INT(d.rank, 5);
    EXPECT_EQ_INT(d.n_ranks, 8);
    EXPECT_EQ_INT(d.local_rank, 1);
    EXPECT(who && strstr(who, "Open MPI"));

    clear_env();
    setenv("SLURM_PROCID", "3", 1);
    setenv("SLURM_STEP_NUM_TASKS", "4", 1);
    setenv("SLURM_LOCALID", "3", 1);
    EXPECT_EQ_INT(train_dist_from_env(&d, &who), R1_OK);
    EXPECT_EQ_INT(d.rank, 3);
    EXPECT_EQ_INT(d.n_ranks, 4);
    EXPECT_EQ_INT(d.local_rank, 3);
    EXPECT(who && strstr(who, "srun"));

    /* no local rank given: the global one picks the GPU */
    clear_env();
    setenv("PMI_RANK", "2", 1);
    setenv("PMI_SIZE", "3", 1);
    EXPECT_EQ_INT(train_dist_from_env(&d, NULL), R1_OK);
    EXPECT_EQ_INT(d.local_rank, 2);

    /* nonsense is refused, not guessed at */
    clear_env();
    setenv("SLURM_PROCID", "4", 1);
    setenv("SLURM_STEP_NUM_TASKS", "4", 1);
    EXPECT_EQ_INT(train_dist_from_env(&d, NULL), R1_EINPUT);
    err_clear();
    clear_env();
}

static void test_rendezvous_name(void) {
    clear_env();
    char *p = train_rendezvous_file("/shared/run");
    EXPECT_STREQ(p, "/shared/run/r1-nccl-id.default");
    free(p);
    setenv("SLURM_JOB_ID", "991", 1);
    setenv("SLURM_STEP_ID", "2", 1);
    p = train_rendezvous_file("/shared/run");
    EXPECT_STREQ(p, "/shared/run/r1-nccl-id.991.2");
    free(p);
    setenv("R1_JOB_ID", "mine", 1); /* the user's name wins */
    p = train_rendezvous_file("d");
    EXPECT_STREQ(p, "d/r1-nccl-id.mine");
    free(p);
    clear_env();
    setenv("PMIX_NAMESPACE", "prterun-host-123@1", 1);
    p = train_rendezvous_file("d");
    EXPECT_STREQ(p, "d/r1-nccl-id.prterun-host-123@1");
    free(p);
    setenv("PMIX_NAMESPACE", "a/b c", 1); /* no directories or spaces out of a namespace */
    p = train_rendezvous_file("d");
    EXPECT_STREQ(p, "d/r1-nccl-id.a_b_c");
    free(p);
    clear_env();
}

/* Four ranks on two hosts, as the all-reduce leaves them: each rank's host adds up its own. */
static void test_host_need(void) {
    const char *host[4] = {"gpu-a", "gpu-b", "gpu-a", "gpu-b"};
    const size_t need[4] = {(size_t)3 << 30, (size_t)5 << 30, (size_t)4 << 30, 1};
    float v[4 * TRAIN_HOST_ENTRY] = {0}, e[TRAIN_HOST_ENTRY];
    for (int r = 0; r < 4; r++) {
        train_host_entry(e, host[r], need[r]);
        for (int j = 0; j < TRAIN_HOST_ENTRY; j++) v[r * TRAIN_HOST_ENTRY + j] += e[j];
    }
    int sharing;
    EXPECT(train_host_need(v, 4, 0, &sharing) == 7.0 * 1073741824.0);
    EXPECT_EQ_INT(sharing, 2);
    /* a byte's need counts as a whole MiB */
    EXPECT(train_host_need(v, 4, 3, &sharing) == 5.0 * 1073741824.0 + 1048576.0);
    EXPECT_EQ_INT(sharing, 2);
    /* the name's parts are exact integers below 2^20, and two names differ in them */
    EXPECT(v[0] == (float)(int)v[0] && v[0] < 1048576.0f && v[1] < 1048576.0f);
    EXPECT(v[0] != v[TRAIN_HOST_ENTRY] || v[1] != v[TRAIN_HOST_ENTRY + 1]);
    /* alone */
    EXPECT(train_host_need(v, 1, 0, &sharing) == 3.0 * 1073741824.0);
    EXPECT_EQ_INT(sharing, 1);
}

int main(void) {
    RUN(test_alone);
    RUN(test_host_need);
    RUN(test_launchers);
    RUN(test_rendezvous_name);
    TESTS_DONE();
}
