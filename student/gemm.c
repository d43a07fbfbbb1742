/* Matrix products for the trainer: OpenBLAS sgemm, called on fixed blocks of rows of C that
 * OpenMP threads share.
 *
 * Why not let OpenBLAS thread them itself: the Debian OpenBLAS runs its own pthread pool, and
 * alternating between that pool and OpenMP's (the attention, norm and loss loops) leaves one
 * pool spinning while the other works; on a busy or small machine that made steps several times
 * slower. With OpenBLAS single-threaded and one OpenMP pool there is no contention, and since the
 * blocks are fixed (not derived from the thread count), every element of C comes from the same
 * sgemm call shape whatever the number of threads: results do not depend on OMP_NUM_THREADS. */
#include <cblas.h>

#include "student/student.h"

enum { GEMM_BLOCK_ROWS = 64 };

void gemm_threads_init(void) { openblas_set_num_threads(1); }

void gemm(int trans_a, int trans_b, int M, int N, int K, float alpha, const float *A, int lda,
          const float *B, int ldb, float beta, float *C, int ldc) {
    const int n_blocks = (M + GEMM_BLOCK_ROWS - 1) / GEMM_BLOCK_ROWS;
    const size_t work = (size_t)M * (size_t)N * (size_t)K;
#pragma omp parallel for schedule(dynamic, 1) if (n_blocks > 1 && work >= (size_t)1 << 21)
    for (int b = 0; b < n_blocks; b++) {
        const int i0 = b * GEMM_BLOCK_ROWS, m = M - i0 < GEMM_BLOCK_ROWS ? M - i0 : GEMM_BLOCK_ROWS;
        /* rows i0.. of op(A): row offset in A, or column offset when A is stored transposed */
        const float *Ab = trans_a ? A + i0 : A + (size_t)i0 * lda;
        cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans,
                    trans_b ? CblasTrans : CblasNoTrans, m, N, K, alpha, Ab, lda, B, ldb, beta,
                    C + (size_t)i0 * ldc, ldc);
    }
}
