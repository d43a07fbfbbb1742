/* Benchmark of the training attention kernels alone: causal flash attention forward and backward
 * over B documents of T tokens packed in one batch, the layout of the trainer (qkv[n, (H + 2 KV)
 * hd], the fused projection's output). bench/torch_attention.py times PyTorch's
 * scaled_dot_product_attention on the same shapes; bench/cuda/attention.sh runs both.
 *
 *   build/bench/cuda_attention --seq 4096 --batch 4 --heads 12 --kv-heads 2 --head-dim 128
 *
 * FLOPs are the products' of the causal half, as FlashAttention counts them: forward
 * 4 hd H T (T + 1) / 2 per document (Q K^T and P V), backward 2.5 times that (S recomputed, dP,
 * dV, dK, dQ), whatever a kernel recomputes beyond. The backward's time includes the delta pass
 * (rowsum(dO * O)), as PyTorch's does. Prints a human line and a JSON line ("result {...}"). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "core/cli.h"
#include "core/dtype.h"
#include "core/error.h"
#include "core/hash.h"

#ifdef R1_HAVE_CUDA
#include <cuda_runtime_api.h>

#include "student/cuda/kernels.h"

static const char *opt_attn;
static int64_t opt_seq, opt_batch, opt_heads, opt_kv_heads, opt_head_dim, opt_reps, opt_ds_mib;
static int64_t opt_ds_heads;

static const cli_opt bench_opts[] = {
    {"seq", OPT_INT, &opt_seq, "4096", 0, "T", "tokens per document"},
    {"batch", OPT_INT, &opt_batch, "4", 0, "B", "documents packed in the batch"},
    {"heads", OPT_INT, &opt_heads, "12", 0, "H", "query heads"},
    {"kv-heads", OPT_INT, &opt_kv_heads, "2", 0, "KV", "key/value heads"},
    {"head-dim", OPT_INT, &opt_head_dim, "128", 0, "HD", "head size"},
    {"reps", OPT_INT, &opt_reps, "20", 0, "N", "timed repetitions (after 3 untimed)"},
    {"attn", OPT_STRING, &opt_attn, "auto", 0, "IMPL",
     "attention kernels: auto (wgmma for head_dim 64/128), wgmma, mma (mma.sync), simple"},
    {"ds-mib", OPT_INT, &opt_ds_mib, "4096", 0, "MIB",
     "scratch for the wgmma backward's dS at head_dim 128 (train lends it what the MLP's "
     "backward has done with: 0.9-5 GiB); -1 all heads at once, 0 none (recompute dS)"},
    {"ds-heads", OPT_INT, &opt_ds_heads, "0", 0, "N", "at most N heads per pass of dS (0: any)"},
};

static const cli_spec bench_spec = {
    .command = "cuda_attention",
    .summary = "Time the training attention kernels (forward, backward) on random inputs.",
    .opts = bench_opts,
    .n_opts = sizeof bench_opts / sizeof *bench_opts,
};

/* A device array of n bf16 values drawn uniformly from [-1, 1) by a seeded stream. */
static r1_bf16 *random_bf16(size_t n, uint64_t seed) {
    uint16_t *h = xmalloc(n * sizeof *h);
    uint64_t st = seed;
    for (size_t i = 0; i < n; i++)
        h[i] = f32_to_bf16((float)(hash_splitmix64(&st) >> 40) / 8388608.0f - 1.0f);
    r1_bf16 *d;
    R1_CUDA_CHECK(cudaMalloc((void **)&d, n * sizeof *d));
    R1_CUDA_CHECK(cudaMemcpy(d, h, n * sizeof *d, cudaMemcpyHostToDevice));
    free(h);
    return d;
}

int main(int argc, char **argv) {
    err_set_command("cuda_attention");
    cli_parse(&bench_spec, argc, argv, NULL, NULL);
    const int T = (int)opt_seq, B = (int)opt_batch, H = (int)opt_heads, KV = (int)opt_kv_heads;
    const int hd = (int)opt_head_dim, reps = (int)opt_reps;
    if (T < 1 || B < 1 || H < 1 || KV < 1 || H % KV || hd < 1 || reps < 1)
        die(R1_EINPUT, "options", "need positive sizes, --heads a multiple of --kv-heads");
    const int n = T * B;
    const int parsed = attn_impl_parse(opt_attn);
    if (parsed < 0)
        die(R1_EINPUT, "--attn", "unknown attention kernels %s (auto, wgmma, mma, simple)",
            opt_attn);
    const attn_impl impl = (attn_impl)parsed;

    int *cu = xmalloc(sizeof(int) * (B + 1));
    for (int b = 0; b <= B; b++) cu[b] = b * T;
    const int rows = attn_tile_rows(impl, hd), n_tiles = attn_tiles_count(cu, B, rows);
    const size_t list = (size_t)ATTN_TILE_INTS * n_tiles;
    int *tq = xmalloc(sizeof(int) * list), *tkv = xmalloc(sizeof(int) * list);
    const int ds_slots = attn_tiles_build(tq, tkv, cu, B, rows);
    int *d_tiles;
    R1_CUDA_CHECK(cudaMalloc((void **)&d_tiles, sizeof(int) * 2 * list));
    R1_CUDA_CHECK(cudaMemcpy(d_tiles, tq, sizeof(int) * list, cudaMemcpyHostToDevice));
    R1_CUDA_CHECK(cudaMemcpy(d_tiles + list, tkv, sizeof(int) * list, cudaMemcpyHostToDevice));
    /* the dS scratch: what all heads of this batch take, or the MiB asked for */
    const size_t ds_bytes = opt_ds_mib < 0 ? (size_t)ds_slots * ATTN_DS_SLOT_BYTES * H
                                           : (size_t)opt_ds_mib << 20;
    void *ds = NULL;
    if (ds_bytes) R1_CUDA_CHECK(cudaMalloc(&ds, ds_bytes));
    const attn_shape a = {.n = n, .n_heads = H, .n_kv_heads = KV, .head_dim = hd,
                          .scale = 1.0f / sqrtf((float)hd), .tile_rows = rows,
                          .n_tiles = n_tiles, .tiles_q = d_tiles, .tiles_kv = d_tiles + list,
                          .impl = impl, .ds_slots = ds_slots, .ds_scratch = ds,
                          .ds_scratch_bytes = ds_bytes, .ds_max_heads = (int)opt_ds_heads};

    const size_t w_qkv = (size_t)(H + 2 * KV) * hd, w_out = (size_t)H * hd;
    r1_bf16 *qkv = random_bf16((size_t)n * w_qkv, 1), *dout = random_bf16((size_t)n * w_out, 2);
    r1_bf16 *out, *dqkv;
    float *lse, *delta;
    R1_CUDA_CHECK(cudaMalloc((void **)&out, (size_t)n * w_out * sizeof *out));
    R1_CUDA_CHECK(cudaMalloc((void **)&dqkv, (size_t)n * w_qkv * sizeof *dqkv));
    R1_CUDA_CHECK(cudaMalloc((void **)&lse, (size_t)n * H * sizeof *lse));
    R1_CUDA_CHECK(cudaMalloc((void **)&delta, (size_t)n * H * sizeof *delta));

    cudaStream_t s;
    cudaEvent_t e0, e1, e2;
    R1_CUDA_CHECK(cudaStreamCreate(&s));
    R1_CUDA_CHECK(cudaEventCreate(&e0));
    R1_CUDA_CHECK(cudaEventCreate(&e1));
    R1_CUDA_CHECK(cudaEventCreate(&e2));
    double fwd_ms = 0, bwd_ms = 0;
    for (int it = 0; it < 3 + reps; it++) {
        R1_CUDA_CHECK(cudaEventRecord(e0, s));
        attention_forward_cuda(out, lse, qkv, &a, s);
        R1_CUDA_CHECK(cudaEventRecord(e1, s));
        attention_backward_cuda(dqkv, delta, dout, qkv, out, lse, &a, s);
        R1_CUDA_CHECK(cudaEventRecord(e2, s));
        R1_CUDA_CHECK(cudaEventSynchronize(e2));
        float f, b;
        R1_CUDA_CHECK(cudaEventElapsedTime(&f, e0, e1));
        R1_CUDA_CHECK(cudaEventElapsedTime(&b, e1, e2));
        if (it >= 3) {
            fwd_ms += f / reps;
            bwd_ms += b / reps;
        }
    }
    const double fwd_flop = 4.0 * hd * H * ((double)T * (T + 1) / 2) * B;
    const double fwd_tf = fwd_flop / (fwd_ms * 1e9), bwd_tf = 2.5 * fwd_flop / (bwd_ms * 1e9);
    const char *name = opt_attn;
    const double ds_mib = (double)ds_bytes / 1048576.0;
    const int per = attn_ds_heads_per_pass(&a);
    char ds_text[64] = "dS recomputed";
    if (per) snprintf(ds_text, sizeof ds_text, "dS kept, %d heads a pass", per);
    printf("r1-distill attention (%s) T=%d B=%d H=%d KV=%d hd=%d, %s: forward %.3f ms (%.0f "
           "TFLOP/s), backward %.3f ms (%.0f TFLOP/s)\n", name, T, B, H, KV, hd, ds_text, fwd_ms,
           fwd_tf, bwd_ms, bwd_tf);
    printf("result {\"impl\":\"r1-distill\",\"kernels\":\"%s\",\"seq\":%d,\"batch\":%d,"
           "\"heads\":%d,\"kv_heads\":%d,\"head_dim\":%d,\"ds_mib\":%.0f,"
           "\"ds_heads_per_pass\":%d,\"fwd_ms\":%.4f,\"bwd_ms\":%.4f,\"fwd_tflops\":%.1f,"
           "\"bwd_tflops\":%.1f}\n", name, T, B, H, KV, hd, ds_mib, per, fwd_ms, bwd_ms, fwd_tf,
           bwd_tf);
    R1_CUDA_CHECK(cudaStreamDestroy(s));
    cudaFree(qkv);
    cudaFree(dout);
    cudaFree(out);
    cudaFree(dqkv);
    cudaFree(lse);
    cudaFree(delta);
    cudaFree(d_tiles);
    cudaFree(ds);
    free(cu);
    free(tq);
    free(tkv);
    return 0;
}

#else
int main(void) {
    fprintf(stderr, "cuda_attention: built without CUDA\n");
    return 2;
}
#endif
