/* NCCL: rendezvous through an id file, and the collectives of data-parallel training and
 * tensor-parallel inference (see core/cuda_comm.h). */
#ifdef R1_HAVE_CUDA

#include "core/cuda_comm.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cuda_runtime_api.h>

#include "core/clock.h"
#include "core/error.h"

#ifdef R1_HAVE_NCCL
/* nccl.h declares a few functions with () argument lists */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wstrict-prototypes"
#include <nccl.h>
#pragma GCC diagnostic pop

struct cuda_comm {
    ncclComm_t comm;
    int rank, n_ranks;
};

/* The id file: magic, the number of ranks (a reader of a file meant for another job size
 * refuses it), then NCCL's opaque id. */
static const char ID_MAGIC[8] = {'R', '1', 'N', 'C', 'C', 'L', 'I', 'D'};
typedef struct {
    char magic[8];
    int32_t n_ranks, pad;
    ncclUniqueId id;
} id_record;

static void nccl_check(ncclResult_t r, const cuda_comm *c, const char *expr, int line) {
    if (r == ncclSuccess) return;
    const char *last = c ? ncclGetLastError(c->comm) : NULL;
    err_fail(R1_ERUNTIME, "nccl", "%s failed at %s:%d: %s%s%s", expr, __FILE__, line,
             ncclGetErrorString(r), last && *last ? "; " : "", last ? last : "");
    err_hint("set NCCL_DEBUG=INFO for NCCL's own account of it");
    err_exit();
}
#define NCCL_CHECK(c, x) nccl_check((x), (c), #x, __LINE__)

static void cuda_check(cudaError_t e, const char *expr, int line) {
    if (e == cudaSuccess) return;
    err_fail(R1_ERUNTIME, "cuda", "%s failed at %s:%d: %s", expr, __FILE__, line,
             cudaGetErrorString(e));
    err_exit();
}
#define COMM_CUDA_CHECK(x) cuda_check((x), #x, __LINE__)

static void sleep_ms(int ms) {
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static int publish_id(const char *path, const id_record *rec) {
    char *tmp = xasprintf("%s.tmp%ld", path, (long)getpid());
    FILE *f = fopen(tmp, "wb");
    int ok = f && fwrite(rec, sizeof *rec, 1, f) == 1;
    if (f && fclose(f) != 0) ok = 0;
    if (ok && rename(tmp, path) != 0) ok = 0;
    int rc = R1_OK;
    if (!ok) {
        rc = err_fail(R1_ERUNTIME, path, "cannot publish the NCCL id: %s", strerror(errno));
        err_hint("the rendezvous directory must be writable by rank 0 and readable by all ranks");
        unlink(tmp);
    }
    free(tmp);
    return rc;
}

static int read_id(const char *path, int n_ranks, double timeout_s, id_record *rec) {
    const double end = clock_seconds() + timeout_s;
    for (;;) {
        FILE *f = fopen(path, "rb");
        if (f) {
            const size_t got = fread(rec, 1, sizeof *rec, f);
            fclose(f);
            if (got == sizeof *rec && memcmp(rec->magic, ID_MAGIC, 8) == 0) {
                if (rec->n_ranks != n_ranks)
                    return err_fail(R1_EINPUT, path, "the NCCL id there is for %d ranks; this "
                                    "process is one of %d", (int)rec->n_ranks, n_ranks);
                return R1_OK;
            }
        }
        if (clock_seconds() > end) {
            err_fail(R1_ERUNTIME, path, "rank 0 did not publish the NCCL id within %.0f s",
                     timeout_s);
            return err_hint("start every rank with the same --rendezvous directory (shared by "
                            "all hosts) and check that rank 0 is running");
        }
        sleep_ms(20);
    }
}

int cuda_comm_create(cuda_comm **out, int rank, int n_ranks, const char *id_file,
                     double timeout_s) {
    *out = NULL;
    CHECK(n_ranks >= 1 && rank >= 0 && rank < n_ranks);
    id_record rec;
    memset(&rec, 0, sizeof rec);
    if (rank == 0) {
        memcpy(rec.magic, ID_MAGIC, 8);
        rec.n_ranks = n_ranks;
        NCCL_CHECK(NULL, ncclGetUniqueId(&rec.id));
        TRY(publish_id(id_file, &rec));
    } else {
        TRY(read_id(id_file, n_ranks, timeout_s, &rec));
    }
    cuda_comm *c = xcalloc(1, sizeof *c);
    c->rank = rank;
    c->n_ranks = n_ranks;
    ncclResult_t r = ncclCommInitRank(&c->comm, n_ranks, rec.id, rank);
    if (r != ncclSuccess) {
        err_fail(R1_ERUNTIME, "nccl", "rank %d of %d could not join the communicator: %s", rank,
                 n_ranks, ncclGetErrorString(r));
        free(c);
        return err_hint("set NCCL_DEBUG=INFO to see why; every rank needs its own GPU");
    }
    /* every rank has joined (the init is collective): the id has served its purpose */
    cuda_comm_barrier(c);
    if (rank == 0) unlink(id_file);
    *out = c;
    return R1_OK;
}

/* An all-reduce waited for: the only collective NCCL offers that every rank must enter before
 * any leaves. */
void cuda_comm_barrier(cuda_comm *c) {
    float zero = 0;
    cuda_comm_all_reduce_host(c, &zero, 1);
}

void cuda_comm_all_reduce_host(cuda_comm *c, float *values, size_t n) {
    if (n == 0) return;
    float *d;
    COMM_CUDA_CHECK(cudaMalloc((void **)&d, n * sizeof(float)));
    COMM_CUDA_CHECK(cudaMemcpy(d, values, n * sizeof(float), cudaMemcpyHostToDevice));
    cuda_comm_all_reduce(c, d, n, COMM_F32, 0);
    COMM_CUDA_CHECK(cudaMemcpy(values, d, n * sizeof(float), cudaMemcpyDeviceToHost));
    COMM_CUDA_CHECK(cudaFree(d));
}

void cuda_comm_destroy(cuda_comm *c) {
    if (!c) return;
    ncclCommDestroy(c->comm);
    free(c);
}

int cuda_comm_rank(const cuda_comm *c) { return c->rank; }
int cuda_comm_size(const cuda_comm *c) { return c->n_ranks; }

static ncclDataType_t nccl_type(comm_dtype t) { return t == COMM_F32 ? ncclFloat32 : ncclBfloat16; }
static size_t type_size(comm_dtype t) { return t == COMM_F32 ? 4 : 2; }

void cuda_comm_reduce_scatter(cuda_comm *c, void *buf, size_t count, comm_dtype t,
                              cudaStream_t s) {
    if (count == 0) return;
    void *mine = (char *)buf + (size_t)c->rank * count * type_size(t);
    NCCL_CHECK(c, ncclReduceScatter(buf, mine, count, nccl_type(t), ncclSum, c->comm, s));
}

void cuda_comm_all_gather(cuda_comm *c, const void *send, void *recv, size_t count, comm_dtype t,
                          cudaStream_t s) {
    if (count == 0) return;
    NCCL_CHECK(c, ncclAllGather(send, recv, count, nccl_type(t), c->comm, s));
}

void cuda_comm_all_reduce(cuda_comm *c, void *buf, size_t count, comm_dtype t, cudaStream_t s) {
    if (count == 0) return;
    NCCL_CHECK(c, ncclAllReduce(buf, buf, count, nccl_type(t), ncclSum, c->comm, s));
}

void cuda_comm_broadcast(cuda_comm *c, void *buf, size_t bytes, cudaStream_t s) {
    if (bytes == 0) return;
    NCCL_CHECK(c, ncclBroadcast(buf, buf, bytes, ncclUint8, 0, c->comm, s));
}

#else /* CUDA without NCCL: one GPU only */

struct cuda_comm {
    int unused;
};

int cuda_comm_create(cuda_comm **out, int rank, int n_ranks, const char *id_file,
                     double timeout_s) {
    *out = NULL;
    err_fail(R1_EINPUT, "nccl", "this r1-distill was built without NCCL: one GPU per job");
    return err_hint("rebuild where $CUDA_HOME/include/nccl.h exists");
}
void cuda_comm_destroy(cuda_comm *c) { free(c); }
void cuda_comm_barrier(cuda_comm *c) { CHECK(!"no NCCL in this build"); }
void cuda_comm_all_reduce_host(cuda_comm *c, float *values, size_t n) {
    CHECK(!"no NCCL in this build");
}
int cuda_comm_rank(const cuda_comm *c) { return 0; }
int cuda_comm_size(const cuda_comm *c) { return 1; }
void cuda_comm_reduce_scatter(cuda_comm *c, void *buf, size_t count, comm_dtype t,
                              cudaStream_t s) {
    CHECK(!"no NCCL in this build");
}
void cuda_comm_all_gather(cuda_comm *c, const void *send, void *recv, size_t count, comm_dtype t,
                          cudaStream_t s) {
    CHECK(!"no NCCL in this build");
}
void cuda_comm_all_reduce(cuda_comm *c, void *buf, size_t count, comm_dtype t, cudaStream_t s) {
    CHECK(!"no NCCL in this build");
}
void cuda_comm_broadcast(cuda_comm *c, void *buf, size_t bytes, cudaStream_t s) {
    CHECK(!"no NCCL in this build");
}

#endif /* R1_HAVE_NCCL */
#endif /* R1_HAVE_CUDA */
