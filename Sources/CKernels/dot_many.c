// Inner products of a few queries with many rows (the exact index's batched search; see
// include/CKernels.h). BLAS sgemm repacks the whole row matrix for every call, which for the small
// batches a server gathers (2 to 32 queries) costs as much as the products themselves: measured on
// 9,144 x 1280 rows, sgemm with 8 queries took 5.8 ms against 1.8 ms for one sgemv. This kernel
// reads each row once from memory and multiplies it, from registers, with a block of queries
// (4 rows x 4 queries of 16-float vectors: 16 accumulators), so a small batch costs little more
// than one sgemv. Written with the compiler's vector extension (16 floats: one AVX-512 register,
// two AVX2 ones) and built per CPU level by target_clones like the other kernels.
#include "CKernels.h"
#include <string.h>

#pragma clang fp reassociate(on) contract(fast)

#define CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))

typedef float v16 __attribute__((vector_size(64), aligned(4)));

static inline __attribute__((always_inline)) v16 load16(const float *p) {
    v16 v;
    memcpy(&v, p, sizeof v);
    return v;
}

static inline __attribute__((always_inline)) float sum16(v16 v) {
    float s = 0;
    for (int i = 0; i < 16; i++) s += v[i];
    return s;
}

// One block of RB rows x QB queries; `vec` = dim rounded down to 16, the rest summed one by one.
#define DOT_BLOCK(RB, QB)                                                                          \
    static inline __attribute__((always_inline)) void block_##RB##x##QB(const float *const *x, const float *const *q, size_t dim,   \
                                         size_t vec, float alpha, float *out, size_t ldo) {         \
        v16 acc[RB][QB];                                                                            \
        for (int i = 0; i < RB; i++)                                                                \
            for (int j = 0; j < QB; j++) acc[i][j] = (v16){0};                                      \
        for (size_t k = 0; k < vec; k += 16) {                                                      \
            v16 xv[RB];                                                                             \
            for (int i = 0; i < RB; i++) xv[i] = load16(x[i] + k);                                  \
            for (int j = 0; j < QB; j++) {                                                          \
                v16 qv = load16(q[j] + k);                                                          \
                for (int i = 0; i < RB; i++) acc[i][j] += xv[i] * qv;                               \
            }                                                                                       \
        }                                                                                           \
        for (int i = 0; i < RB; i++)                                                                \
            for (int j = 0; j < QB; j++) {                                                          \
                float s = sum16(acc[i][j]);                                                         \
                for (size_t k = vec; k < dim; k++) s += x[i][k] * q[j][k];                          \
                out[(size_t)j * ldo + i] = alpha * s;                                               \
            }                                                                                       \
    }

DOT_BLOCK(4, 4)
DOT_BLOCK(4, 3)
DOT_BLOCK(4, 2)
DOT_BLOCK(4, 1)
DOT_BLOCK(1, 4)
DOT_BLOCK(1, 1)

CLONES void lk_dot_many_f32(const float *Q, size_t m, const float *X, size_t rows, size_t dim, float alpha,
                            float *out, size_t ldo) {
    size_t vec = dim & ~(size_t)15;
    size_t r = 0;
    for (; r + 4 <= rows; r += 4) {
        const float *x[4] = {X + r * dim, X + (r + 1) * dim, X + (r + 2) * dim, X + (r + 3) * dim};
        size_t j = 0;
        for (; j + 4 <= m; j += 4) {
            const float *q[4] = {Q + j * dim, Q + (j + 1) * dim, Q + (j + 2) * dim, Q + (j + 3) * dim};
            block_4x4(x, q, dim, vec, alpha, out + j * ldo + r, ldo);
        }
        const float *q[3] = {Q + j * dim, Q + (j + 1) * dim, Q + (j + 2) * dim};
        switch (m - j) {
        case 3: block_4x3(x, q, dim, vec, alpha, out + j * ldo + r, ldo); break;
        case 2: block_4x2(x, q, dim, vec, alpha, out + j * ldo + r, ldo); break;
        case 1: block_4x1(x, q, dim, vec, alpha, out + j * ldo + r, ldo); break;
        default: break;
        }
    }
    for (; r < rows; r++) {
        const float *x[1] = {X + r * dim};
        size_t j = 0;
        for (; j + 4 <= m; j += 4) {
            const float *q[4] = {Q + j * dim, Q + (j + 1) * dim, Q + (j + 2) * dim, Q + (j + 3) * dim};
            block_1x4(x, q, dim, vec, alpha, out + j * ldo + r, ldo);
        }
        for (; j < m; j++) {
            const float *q[1] = {Q + j * dim};
            block_1x1(x, q, dim, vec, alpha, out + j * ldo + r, ldo);
        }
    }
}

// Inner products of one query with scattered rows (the exact pass after a screened scan: a few
// hundred candidate rows per query, spread over a store larger than the cache). Four rows are
// multiplied together (four memory streams at once) while the next four are prefetched, so the
// rows' cache misses overlap instead of stalling one after another.
static inline __attribute__((always_inline)) void dot_rows(const float *q, const float *const *rows, size_t count,
                                                           size_t dim, float *out) {
    size_t vec = dim & ~(size_t)15;
    size_t r = 0;
    for (; r + 4 <= count; r += 4) {
        const float *x[4] = {rows[r], rows[r + 1], rows[r + 2], rows[r + 3]};
        const float *next[4] = {x[0], x[1], x[2], x[3]};
        for (size_t i = 0; i < 4 && r + 8 + i < count; i++) next[i] = rows[r + 8 + i];
        v16 acc[4] = {{0}, {0}, {0}, {0}};
        for (size_t k = 0; k < vec; k += 16) {
            v16 qv = load16(q + k);
            for (int i = 0; i < 4; i++) {
                __builtin_prefetch(next[i] + k);
                acc[i] += load16(x[i] + k) * qv;
            }
        }
        for (int i = 0; i < 4; i++) {
            float s = sum16(acc[i]);
            for (size_t k = vec; k < dim; k++) s += x[i][k] * q[k];
            out[r + i] = s;
        }
    }
    for (; r < count; r++) {
        v16 acc = {0};
        for (size_t k = 0; k < vec; k += 16) acc += load16(rows[r] + k) * load16(q + k);
        float s = sum16(acc);
        for (size_t k = vec; k < dim; k++) s += rows[r][k] * q[k];
        out[r] = s;
    }
}

CLONES void lk_dot_rows_f32(const float *q, const float *const *rows, size_t count, size_t dim, float *out) {
    dot_rows(q, rows, count, dim, out);
}
