/* Small non-cryptographic hashes: identities of files and settings, and counter-based random
 * numbers.
 *
 *   hash_fnv1a64   FNV-1a, 64-bit (offset basis 0xcbf29ce484222325, prime 0x100000001b3), over
 *                  bytes. Used to recognise a file or a settings object again (resume, merge);
 *                  it detects change, it does not resist forgery.
 *   hash_mix64     the splitmix64 output function (Steele, Lea, Flood 2014):
 *                    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
 *                    z = (z ^ (z >> 27)) * 0x94d049bb133111eb
 *                    z ^ (z >> 31)
 *                  a bijection on 64-bit words; splitmix64's first output for seed 0 is
 *                  hash_mix64(0x9e3779b97f4a7c15) = 0xe220a8397b1dcdaf. */
#ifndef R1_CORE_HASH_H
#define R1_CORE_HASH_H

#include <stddef.h>
#include <stdint.h>

#ifdef __CUDACC__ /* the inline ones serve kernels too */
#define HASH_INLINE static inline __host__ __device__
#else
#define HASH_INLINE static inline
#endif

#ifdef __cplusplus
extern "C" {
#endif

#define HASH_FNV1A64_INIT 0xcbf29ce484222325ull
#define HASH_GOLDEN64 0x9e3779b97f4a7c15ull

/* Continues an FNV-1a hash over n more bytes (start from HASH_FNV1A64_INIT). */
uint64_t hash_fnv1a64_update(uint64_t h, const void *data, size_t n);
uint64_t hash_fnv1a64(const void *data, size_t n);
HASH_INLINE uint64_t hash_mix64(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}
/* splitmix64's next output: the state (a counter) moves on by HASH_GOLDEN64 and is mixed, so
 * the k-th output from state s is hash_mix64(s + k * HASH_GOLDEN64). */
HASH_INLINE uint64_t hash_splitmix64(uint64_t *state) {
    return hash_mix64(*state += HASH_GOLDEN64);
}
/* 16 lowercase hex digits and a NUL into out[17]. */
void hash_hex64(char out[17], uint64_t h);
/* FNV-1a of a whole file's bytes, read in blocks; *bytes gets its size. */
int hash_file(const char *path, uint64_t *h, uint64_t *bytes);

#ifdef __cplusplus
}
#endif
#endif
