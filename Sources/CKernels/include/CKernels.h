// CKernels: one-query-against-many-rows distance kernels for the exact index.
// Rows are stored contiguously (row-major, `dim` values each) as float32 or IEEE float16 (passed as
// uint16_t bits). Each kernel writes one value per row into `out`. Cosine/inner product on float32
// goes through BLAS (sgemv); these cover what BLAS does not: float16 storage and the L1, L-inf and
// chi-square metrics. Compiled for AVX-512, AVX2 and baseline x86-64, chosen at load time.
#ifndef LOOKALIKE_CKERNELS_H
#define LOOKALIKE_CKERNELS_H
#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

/// out[r] = dot(q, X[r])
void lk_dot_f16(const float *q, const uint16_t *X, size_t rows, size_t dim, float *out);
/// out[r] = sum |q - X[r]|
void lk_l1_f32(const float *q, const float *X, size_t rows, size_t dim, float *out);
void lk_l1_f16(const float *q, const uint16_t *X, size_t rows, size_t dim, float *out);
/// out[r] = max |q - X[r]|
void lk_linf_f32(const float *q, const float *X, size_t rows, size_t dim, float *out);
void lk_linf_f16(const float *q, const uint16_t *X, size_t rows, size_t dim, float *out);
/// Chi-square distance between L1-normalised non-negative vectors:
/// a = q*qScale, b = X[r]*rowScale[r]; out[r] = 0.5 * sum (a-b)^2 / (a+b)   (terms with a+b == 0 skipped)
void lk_chi2_f32(const float *q, float qScale, const float *X, const float *rowScale, size_t rows, size_t dim, float *out);
void lk_chi2_f16(const float *q, float qScale, const uint16_t *X, const float *rowScale, size_t rows, size_t dim, float *out);
/// Converts n floats to float16 bits (round to nearest even) and back.
void lk_f32_to_f16(const float *src, uint16_t *dst, size_t n);
void lk_f16_to_f32(const uint16_t *src, float *dst, size_t n);

// Binary codes (hamming.c): `words` 64-bit words per code, codes stored contiguously.
/// out[i] = popcount(q XOR X[i]) over the code's words (AVX-512 VPOPCNTDQ, POPCNT or portable
/// code, chosen at load time).
void lk_hamming(const uint64_t *q, const uint64_t *X, size_t n, size_t words, uint16_t *out);
/// Which Hamming kernel runs on this CPU: "avx512-vpopcntdq", "popcnt" or "portable".
const char *lk_hamming_kernel(void);
/// Candidate selection from Hamming distances (values above `maxDistance` are ignored: callers
/// mark removed or filtered rows with 0xFFFF). With `radius` >= 0, every position whose distance is
/// <= radius (at most `capacity`); otherwise the `capacity` smallest (ties at the boundary go to the
/// lower positions). Positions are written to `out` in increasing position order; returns how many.
size_t lk_hamming_select(const uint16_t *dist, size_t n, unsigned maxDistance, long radius, size_t capacity, uint32_t *out);
/// Packs sign bits: bit j of code r is set when values[r*bits + j] >= 0 (bit j in word j/64, bit j%64).
void lk_pack_signs(const float *values, size_t rows, size_t bits, uint64_t *codes);
/// Batched inner products (dot_many.c): out[j*ldo + r] = alpha * dot(Q[j], X[r]) for the m queries
/// Q (m x dim, row-major) and the rows X (rows x dim). Faster than sgemm for small m (it does not
/// repack X); the exact index uses it for batches of up to 32 queries.
void lk_dot_many_f32(const float *Q, size_t m, const float *X, size_t rows, size_t dim, float alpha, float *out, size_t ldo);
/// out[r] = dot(q, rows[r]) for `count` scattered rows of `dim` floats (prefetching ahead).
void lk_dot_rows_f32(const float *q, const float *const *rows, size_t count, size_t dim, float *out);
/// out = dot(a, b) over n floats (vectorised; one pair of rows, used by candidate re-ranking).
float lk_dot_f32(const float *a, const float *b, size_t n);
// bfloat16 screening (dot_bf16.c): for batched exact scans, which re-rank exactly what it finds.
/// 1 when this CPU (and OS) runs AVX512-BF16; lk_dot_many_bf16 must not be called otherwise.
int lk_bf16_available(void);
/// Converts n floats to bfloat16 bits (round to nearest even: relative error <= 2^-8).
void lk_f32_to_bf16(const float *src, uint16_t *dst, size_t n);
/// out[j*ldo + r] = dot(Q[j], X[r]) over `stride` bf16 values (a multiple of 32, zero padded),
/// products exact and summed in float32.
void lk_dot_many_bf16(const uint16_t *Q, size_t m, const uint16_t *X, size_t rows, size_t stride, float *out, size_t ldo);
/// One query's pass over a block of bf16 scores (rows first..<first+n): keeps the k largest scores
/// of rows not `dead` in `heap` (a binary min-heap of *heapCount values, carried across blocks) and
/// writes every such row scoring at least (the running k-th largest - margin) to outPositions /
/// outScores (room for n); returns how many. The running k-th largest only rises, so the caller
/// filters the rows again with the final one.
size_t lk_screen_block(const float *scores, size_t n, size_t first, const bool *dead, size_t k, float margin,
                       float *heap, size_t *heapCount, uint32_t *outPositions, float *outScores);
// Graphs (graph.c).
/// The subgraph of the `m` nodes `subset` of a CSR graph (rowStart has one entry per node + 1):
/// for each subset node in order, its edges to other subset nodes, renumbered by `local` (graph
/// node -> subset slot, -1 outside). outStart gets m + 1 entries; outCols/outVals room for the
/// subset nodes' total degree. Returns the number of edges kept.
size_t lk_csr_subgraph(const int64_t *rowStart, const int32_t *columns, const float *values, const int32_t *subset,
                       size_t m, const int32_t *local, int64_t *outStart, int32_t *outCols, float *outVals);
#endif
