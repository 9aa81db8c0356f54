// Binary-code kernels for the coarse stage of the `hash` index (see include/CKernels.h): XOR and
// popcount of packed 64-bit words, then a linear-time candidate selection by a histogram of the
// distances (they are small integers, at most 256, so no heap or sort is needed). The AVX-512
// VPOPCNTDQ version counts eight words per instruction; it is picked at load time when the CPU
// has it (x86-64-v4 alone does not imply VPOPCNTDQ, so target_clones cannot express it), else
// the POPCNT version, else portable C.
#include "CKernels.h"
#include <immintrin.h>
#include <string.h>

typedef void (*hamming_fn)(const uint64_t *, const uint64_t *, size_t, size_t, uint16_t *);

static void hamming_portable(const uint64_t *q, const uint64_t *X, size_t n, size_t words, uint16_t *out) {
    for (size_t i = 0; i < n; i++) {
        unsigned s = 0;
        for (size_t w = 0; w < words; w++) s += (unsigned)__builtin_popcountll(q[w] ^ X[i * words + w]);
        out[i] = (uint16_t)s;
    }
}

__attribute__((target("popcnt")))
static void hamming_popcnt(const uint64_t *q, const uint64_t *X, size_t n, size_t words, uint16_t *out) {
    if (words == 1) {
        const uint64_t q0 = q[0];
        for (size_t i = 0; i < n; i++) out[i] = (uint16_t)__builtin_popcountll(q0 ^ X[i]);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        unsigned s = 0;
        for (size_t w = 0; w < words; w++) s += (unsigned)__builtin_popcountll(q[w] ^ X[i * words + w]);
        out[i] = (uint16_t)s;
    }
}

#define AVX512POP __attribute__((target("avx512f,avx512bw,avx512vl,avx512vpopcntdq,popcnt")))

AVX512POP static void hamming_avx512(const uint64_t *q, const uint64_t *X, size_t n, size_t words, uint16_t *out) {
    size_t i = 0;
    if (words == 1) {
        // Eight codes per 512-bit load.
        const __m512i qv = _mm512_set1_epi64((long long)q[0]);
        for (; i + 8 <= n; i += 8) {
            __m512i c = _mm512_popcnt_epi64(_mm512_xor_si512(_mm512_loadu_si512(X + i), qv));
            _mm_storeu_si128((__m128i *)(out + i), _mm512_cvtepi64_epi16(c));
        }
    } else if (words == 2) {
        // Four codes per load; two loads give eight codes, whose two word counts are added by
        // picking the even and the odd lanes of both.
        const __m512i qv = _mm512_set_epi64((long long)q[1], (long long)q[0], (long long)q[1], (long long)q[0],
                                            (long long)q[1], (long long)q[0], (long long)q[1], (long long)q[0]);
        const __m512i even = _mm512_set_epi64(14, 12, 10, 8, 6, 4, 2, 0), odd = _mm512_set_epi64(15, 13, 11, 9, 7, 5, 3, 1);
        for (; i + 8 <= n; i += 8) {
            __m512i a = _mm512_popcnt_epi64(_mm512_xor_si512(_mm512_loadu_si512(X + i * 2), qv));
            __m512i b = _mm512_popcnt_epi64(_mm512_xor_si512(_mm512_loadu_si512(X + i * 2 + 8), qv));
            __m512i s = _mm512_add_epi64(_mm512_permutex2var_epi64(a, even, b), _mm512_permutex2var_epi64(a, odd, b));
            _mm_storeu_si128((__m128i *)(out + i), _mm512_cvtepi64_epi16(s));
        }
    } else if (words == 4) {
        // Two codes per load; four loads give eight codes; two rounds of even+odd lane sums.
        const __m512i qv = _mm512_set_epi64((long long)q[3], (long long)q[2], (long long)q[1], (long long)q[0],
                                            (long long)q[3], (long long)q[2], (long long)q[1], (long long)q[0]);
        const __m512i even = _mm512_set_epi64(14, 12, 10, 8, 6, 4, 2, 0), odd = _mm512_set_epi64(15, 13, 11, 9, 7, 5, 3, 1);
        for (; i + 8 <= n; i += 8) {
            const uint64_t *x = X + i * 4;
            __m512i a = _mm512_popcnt_epi64(_mm512_xor_si512(_mm512_loadu_si512(x), qv));
            __m512i b = _mm512_popcnt_epi64(_mm512_xor_si512(_mm512_loadu_si512(x + 8), qv));
            __m512i c = _mm512_popcnt_epi64(_mm512_xor_si512(_mm512_loadu_si512(x + 16), qv));
            __m512i d = _mm512_popcnt_epi64(_mm512_xor_si512(_mm512_loadu_si512(x + 24), qv));
            __m512i ab = _mm512_add_epi64(_mm512_permutex2var_epi64(a, even, b), _mm512_permutex2var_epi64(a, odd, b));
            __m512i cd = _mm512_add_epi64(_mm512_permutex2var_epi64(c, even, d), _mm512_permutex2var_epi64(c, odd, d));
            __m512i s = _mm512_add_epi64(_mm512_permutex2var_epi64(ab, even, cd), _mm512_permutex2var_epi64(ab, odd, cd));
            _mm_storeu_si128((__m128i *)(out + i), _mm512_cvtepi64_epi16(s));
        }
    } else {
        // Other widths (3, 5..): one code at a time, its words in one masked load.
        for (; i < n && words <= 8; i++) {
            __mmask8 m = (__mmask8)((1u << words) - 1);
            __m512i qv = _mm512_maskz_loadu_epi64(m, q);
            __m512i c = _mm512_popcnt_epi64(_mm512_xor_si512(_mm512_maskz_loadu_epi64(m, X + i * words), qv));
            out[i] = (uint16_t)_mm512_reduce_add_epi64(c);
        }
    }
    for (; i < n; i++) {
        unsigned s = 0;
        for (size_t w = 0; w < words; w++) s += (unsigned)__builtin_popcountll(q[w] ^ X[i * words + w]);
        out[i] = (uint16_t)s;
    }
}

static hamming_fn chosen;
static const char *chosen_name;

static void choose(void) {
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512vpopcntdq") && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl")) {
        chosen = hamming_avx512; chosen_name = "avx512-vpopcntdq";
    } else if (__builtin_cpu_supports("popcnt")) {
        chosen = hamming_popcnt; chosen_name = "popcnt";
    } else {
        chosen = hamming_portable; chosen_name = "portable";
    }
}

void lk_hamming(const uint64_t *q, const uint64_t *X, size_t n, size_t words, uint16_t *out) {
    // A benign race: every thread that sees NULL stores the same pointer.
    if (!__atomic_load_n(&chosen, __ATOMIC_ACQUIRE)) choose();
    chosen(q, X, n, words, out);
}

const char *lk_hamming_kernel(void) {
    if (!__atomic_load_n(&chosen, __ATOMIC_ACQUIRE)) choose();
    return chosen_name;
}

size_t lk_hamming_select(const uint16_t *dist, size_t n, unsigned maxDistance, long radius, size_t capacity, uint32_t *out) {
    if (capacity == 0 || n == 0) return 0;
    if (maxDistance > 1024) maxDistance = 1024;
    // Four interleaved histograms: distances cluster on a few values, and one histogram would
    // chain every increment through the same few counters in memory.
    uint32_t parts[4][1026];
    memset(parts, 0, sizeof(parts));
    size_t i4 = 0;
    for (; i4 + 4 <= n; i4 += 4) {
        parts[0][dist[i4] <= maxDistance ? dist[i4] : 1025]++;
        parts[1][dist[i4 + 1] <= maxDistance ? dist[i4 + 1] : 1025]++;
        parts[2][dist[i4 + 2] <= maxDistance ? dist[i4 + 2] : 1025]++;
        parts[3][dist[i4 + 3] <= maxDistance ? dist[i4 + 3] : 1025]++;
    }
    for (; i4 < n; i4++) parts[0][dist[i4] <= maxDistance ? dist[i4] : 1025]++;
    size_t histogram[1025];
    for (unsigned v = 0; v <= maxDistance; v++) histogram[v] = (size_t)parts[0][v] + parts[1][v] + parts[2][v] + parts[3][v];
    // The cut: every distance below `cut` is taken, and `atCut` of those equal to it.
    unsigned cut = 0;
    size_t below = 0, atCut = 0;
    if (radius >= 0) {
        unsigned r = radius > (long)maxDistance ? maxDistance : (unsigned)radius;
        for (cut = 0; cut <= r; cut++) {
            if (below + histogram[cut] > capacity) { atCut = capacity - below; break; }
            below += histogram[cut];
        }
        if (cut > r) { cut = r + 1; atCut = 0; }
    } else {
        for (cut = 0; cut <= maxDistance; cut++) {
            if (below + histogram[cut] >= capacity) { atCut = capacity - below; break; }
            below += histogram[cut];
        }
        if (cut > maxDistance) { cut = maxDistance + 1; atCut = 0; }
    }
    size_t count = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned d = dist[i];
        if (d < cut) out[count++] = (uint32_t)i;
        else if (d == cut && atCut > 0) { out[count++] = (uint32_t)i; atCut--; }
    }
    return count;
}

void lk_pack_signs(const float *values, size_t rows, size_t bits, uint64_t *codes) {
    size_t words = (bits + 63) / 64;
    for (size_t r = 0; r < rows; r++) {
        uint64_t *c = codes + r * words;
        memset(c, 0, words * 8);
        const float *v = values + r * bits;
        for (size_t j = 0; j < bits; j++) if (v[j] >= 0) c[j / 64] |= (uint64_t)1 << (j % 64);
    }
}
