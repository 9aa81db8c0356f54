// Screening kernel for batched exact scans (see VectorStore's screened search): inner products of a
// few bfloat16 queries with many bfloat16 rows, with AVX512-BF16's VDPBF16PS (32 products per
// instruction, twice the float32 FMA's 16). The rows are a bf16 copy of the float32 store, so a
// scan reads half the bytes and does half the instructions; the caller bounds the rounding error
// and re-ranks every row that could be in the true top k with exact float32 products, so answers
// stay exact. Rows and queries are `stride` values apart, `stride` a multiple of 32 (zero padded).
// Built only for CPUs with AVX512-BF16 (checked at run time by lk_bf16_available).
#include "CKernels.h"
#include <cpuid.h>
#include <immintrin.h>
#include <string.h>

int lk_bf16_available(void) {
    unsigned a = 0, b = 0, c = 0, d = 0;
    if (!__builtin_cpu_supports("avx512f") || !__builtin_cpu_supports("avx512bw")) return 0;
    if (!__get_cpuid_count(7, 1, &a, &b, &c, &d)) return 0;
    return (a >> 5) & 1;  // CPUID.(EAX=7,ECX=1):EAX[5] = AVX512_BF16
}

void lk_f32_to_bf16(const float *src, uint16_t *dst, size_t n) {
    for (size_t i = 0; i < n; i++) {
        uint32_t u;
        memcpy(&u, &src[i], 4);
        if ((u & 0x7fffffffu) > 0x7f800000u) {  // NaN stays a (quiet) NaN
            dst[i] = (uint16_t)((u >> 16) | 0x40);
            continue;
        }
        u += 0x7fffu + ((u >> 16) & 1u);  // round to nearest, ties to even
        dst[i] = (uint16_t)(u >> 16);
    }
}

#define BF16_TARGET __attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16")))

/// The four horizontal sums of a, b, c, d in one vector: halves added, then two rounds of pairwise
/// adds, about a third of the instructions of four _mm512_reduce_add_ps (which, once per output of a
/// 4x4 block, cost a quarter as much as the block's products at 1,280 dimensions).
static inline __attribute__((always_inline)) BF16_TARGET __m128 sum4(__m512 a, __m512 b, __m512 c, __m512 d) {
    const __m256 a8 = _mm256_add_ps(_mm512_castps512_ps256(a), _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(a), 1)));
    const __m256 b8 = _mm256_add_ps(_mm512_castps512_ps256(b), _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(b), 1)));
    const __m256 c8 = _mm256_add_ps(_mm512_castps512_ps256(c), _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(c), 1)));
    const __m256 d8 = _mm256_add_ps(_mm512_castps512_ps256(d), _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(d), 1)));
    const __m256 h = _mm256_hadd_ps(_mm256_hadd_ps(a8, b8), _mm256_hadd_ps(c8, d8));
    return _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
}

#define BF16_BLOCK(RB, QB)                                                                           \
    static inline __attribute__((always_inline)) BF16_TARGET void bf16_##RB##x##QB(                 \
        const uint16_t *const *x, const uint16_t *const *q, size_t stride, float *out, size_t ldo) { \
        __m512 acc[RB][QB];                                                                          \
        for (int i = 0; i < RB; i++)                                                                 \
            for (int j = 0; j < QB; j++) acc[i][j] = _mm512_setzero_ps();                            \
        for (size_t k = 0; k < stride; k += 32) {                                                    \
            __m512bh xv[RB];                                                                         \
            for (int i = 0; i < RB; i++) xv[i] = (__m512bh)_mm512_loadu_si512((const void *)(x[i] + k)); \
            for (int j = 0; j < QB; j++) {                                                           \
                __m512bh qv = (__m512bh)_mm512_loadu_si512((const void *)(q[j] + k));                \
                for (int i = 0; i < RB; i++) acc[i][j] = _mm512_dpbf16_ps(acc[i][j], xv[i], qv);     \
            }                                                                                        \
        }                                                                                            \
        for (int j = 0; j < QB; j++) {                                                               \
            if (RB == 4) {                                                                           \
                _mm_storeu_ps(out + (size_t)j * ldo, sum4(acc[0][j], acc[1][j], acc[2][j], acc[3][j])); \
            } else {                                                                                 \
                for (int i = 0; i < RB; i++) out[(size_t)j * ldo + i] = _mm512_reduce_add_ps(acc[i][j]); \
            }                                                                                        \
        }                                                                                            \
    }

BF16_BLOCK(4, 4)
BF16_BLOCK(4, 3)
BF16_BLOCK(4, 2)
BF16_BLOCK(4, 1)
BF16_BLOCK(1, 4)
BF16_BLOCK(1, 1)

BF16_TARGET void lk_dot_many_bf16(const uint16_t *Q, size_t m, const uint16_t *X, size_t rows, size_t stride,
                                  float *out, size_t ldo) {
    size_t r = 0;
    for (; r + 4 <= rows; r += 4) {
        const uint16_t *x[4] = {X + r * stride, X + (r + 1) * stride, X + (r + 2) * stride, X + (r + 3) * stride};
        size_t j = 0;
        for (; j + 4 <= m; j += 4) {
            const uint16_t *q[4] = {Q + j * stride, Q + (j + 1) * stride, Q + (j + 2) * stride, Q + (j + 3) * stride};
            bf16_4x4(x, q, stride, out + j * ldo + r, ldo);
        }
        const uint16_t *q[3] = {Q + j * stride, Q + (j + 1) * stride, Q + (j + 2) * stride};
        switch (m - j) {
        case 3: bf16_4x3(x, q, stride, out + j * ldo + r, ldo); break;
        case 2: bf16_4x2(x, q, stride, out + j * ldo + r, ldo); break;
        case 1: bf16_4x1(x, q, stride, out + j * ldo + r, ldo); break;
        default: break;
        }
    }
    for (; r < rows; r++) {
        const uint16_t *x[1] = {X + r * stride};
        size_t j = 0;
        for (; j + 4 <= m; j += 4) {
            const uint16_t *q[4] = {Q + j * stride, Q + (j + 1) * stride, Q + (j + 2) * stride, Q + (j + 3) * stride};
            bf16_1x4(x, q, stride, out + j * ldo + r, ldo);
        }
        for (; j < m; j++) {
            const uint16_t *q[1] = {Q + j * stride};
            bf16_1x1(x, q, stride, out + j * ldo + r, ldo);
        }
    }
}

size_t lk_screen_block(const float *scores, size_t n, size_t first, const bool *dead, size_t k, float margin,
                       float *heap, size_t *heapCount, uint32_t *outPositions, float *outScores) {
    size_t count = *heapCount, out = 0;
    if (k == 0) return 0;
    float floor = count == k ? heap[0] - margin : -__builtin_inff();
    for (size_t r = 0; r < n; r++) {
        float v = scores[r];
        if (!(v >= floor) || dead[first + r]) continue;  // NaN fails the comparison
        outPositions[out] = (uint32_t)(first + r);
        outScores[out] = v;
        out++;
        if (count < k) {  // sift up
            size_t i = count++;
            while (i > 0 && v < heap[(i - 1) / 2]) {
                heap[i] = heap[(i - 1) / 2];
                i = (i - 1) / 2;
            }
            heap[i] = v;
            if (count == k) floor = heap[0] - margin;
        } else if (v > heap[0]) {  // replace the minimum, sift down
            size_t i = 0;
            for (;;) {
                size_t child = 2 * i + 1;
                if (child >= k) break;
                if (child + 1 < k && heap[child + 1] < heap[child]) child++;
                if (!(heap[child] < v)) break;
                heap[i] = heap[child];
                i = child;
            }
            heap[i] = v;
            floor = heap[0] - margin;
        }
    }
    *heapCount = count;
    return out;
}
