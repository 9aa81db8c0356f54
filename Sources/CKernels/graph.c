// Sparse-graph helper for diffusion re-ranking (Reranking/Diffusion.swift): the subgraph of a
// query's candidates, cut out of the library's mutual k-NN graph (CSR) on every served click. The
// candidates are scattered over a graph that a server's scans keep pushing out of the cache, so
// the work is cache misses: all the candidates' edge lists are prefetched first, then read.
#include "CKernels.h"

size_t lk_csr_subgraph(const int64_t *rowStart, const int32_t *columns, const float *values, const int32_t *subset,
                       size_t m, const int32_t *local, int64_t *outStart, int32_t *outCols, float *outVals) {
    for (size_t i = 0; i < m; i++) {
        int64_t a = rowStart[subset[i]], b = rowStart[subset[i] + 1];
        for (int64_t e = a; e < b; e += 16) {
            __builtin_prefetch(columns + e);
            __builtin_prefetch(values + e);
        }
    }
    size_t n = 0;
    outStart[0] = 0;
    for (size_t i = 0; i < m; i++) {
        int64_t a = rowStart[subset[i]], b = rowStart[subset[i] + 1];
        for (int64_t e = a; e < b; e++) {
            int32_t j = local[columns[e]];
            if (j >= 0) {
                outCols[n] = j;
                outVals[n] = values[e];
                n++;
            }
        }
        outStart[i + 1] = (int64_t)n;
    }
    return n;
}
