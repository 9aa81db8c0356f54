// Distance kernels (see include/CKernels.h). Plain loops the compiler vectorises: reassociation is
// allowed inside this file only, so sums may be computed in vector lanes (results differ from a
// sequential sum in the last bits, which ranking does not care about). target_clones builds each
// kernel for AVX-512, AVX2+F16C+FMA and baseline; the loader picks the best one the CPU supports.
#include "CKernels.h"
#include <math.h>
#include <string.h>

#pragma clang fp reassociate(on) contract(fast)

#define CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))

static inline float h2f(uint16_t h) { _Float16 v; memcpy(&v, &h, 2); return (float)v; }

CLONES void lk_dot_f16(const float *q, const uint16_t *X, size_t rows, size_t dim, float *out) {
    for (size_t r = 0; r < rows; r++) {
        const uint16_t *x = X + r * dim;
        float s = 0;
        for (size_t i = 0; i < dim; i++) s += q[i] * h2f(x[i]);
        out[r] = s;
    }
}

CLONES void lk_l1_f32(const float *q, const float *X, size_t rows, size_t dim, float *out) {
    for (size_t r = 0; r < rows; r++) {
        const float *x = X + r * dim;
        float s = 0;
        for (size_t i = 0; i < dim; i++) s += fabsf(q[i] - x[i]);
        out[r] = s;
    }
}

CLONES void lk_l1_f16(const float *q, const uint16_t *X, size_t rows, size_t dim, float *out) {
    for (size_t r = 0; r < rows; r++) {
        const uint16_t *x = X + r * dim;
        float s = 0;
        for (size_t i = 0; i < dim; i++) s += fabsf(q[i] - h2f(x[i]));
        out[r] = s;
    }
}

CLONES void lk_linf_f32(const float *q, const float *X, size_t rows, size_t dim, float *out) {
    for (size_t r = 0; r < rows; r++) {
        const float *x = X + r * dim;
        float m = 0;
        for (size_t i = 0; i < dim; i++) m = fmaxf(m, fabsf(q[i] - x[i]));
        out[r] = m;
    }
}

CLONES void lk_linf_f16(const float *q, const uint16_t *X, size_t rows, size_t dim, float *out) {
    for (size_t r = 0; r < rows; r++) {
        const uint16_t *x = X + r * dim;
        float m = 0;
        for (size_t i = 0; i < dim; i++) m = fmaxf(m, fabsf(q[i] - h2f(x[i])));
        out[r] = m;
    }
}

CLONES void lk_chi2_f32(const float *q, float qScale, const float *X, const float *rowScale, size_t rows, size_t dim, float *out) {
    for (size_t r = 0; r < rows; r++) {
        const float *x = X + r * dim;
        const float bs = rowScale[r];
        float s = 0;
        for (size_t i = 0; i < dim; i++) {
            float a = q[i] * qScale, b = x[i] * bs, t = a + b, d = a - b;
            s += t > 0 ? d * d / t : 0.0f;
        }
        out[r] = 0.5f * s;
    }
}

CLONES void lk_chi2_f16(const float *q, float qScale, const uint16_t *X, const float *rowScale, size_t rows, size_t dim, float *out) {
    for (size_t r = 0; r < rows; r++) {
        const uint16_t *x = X + r * dim;
        const float bs = rowScale[r];
        float s = 0;
        for (size_t i = 0; i < dim; i++) {
            float a = q[i] * qScale, b = h2f(x[i]) * bs, t = a + b, d = a - b;
            s += t > 0 ? d * d / t : 0.0f;
        }
        out[r] = 0.5f * s;
    }
}

CLONES void lk_f32_to_f16(const float *src, uint16_t *dst, size_t n) {
    for (size_t i = 0; i < n; i++) { _Float16 v = (_Float16)src[i]; memcpy(&dst[i], &v, 2); }
}

CLONES void lk_f16_to_f32(const uint16_t *src, float *dst, size_t n) {
    for (size_t i = 0; i < n; i++) dst[i] = h2f(src[i]);
}

CLONES float lk_dot_f32(const float *a, const float *b, size_t n) {
    float s = 0;
    for (size_t i = 0; i < n; i++) s += a[i] * b[i];
    return s;
}
