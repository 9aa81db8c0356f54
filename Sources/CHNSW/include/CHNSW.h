// CHNSW: a small C API over hnswlib (Debian libhnswlib-dev, header-only C++), so Swift can use it:
// create, add (in parallel), tombstone (markDelete), search with a per-call beam width, and
// serialise to / from a memory buffer (the payload of Lookalike's IndexFile). Inner-product space
// on unit vectors (distance 1 - dot), with Lookalike's own dot-product kernel compiled per CPU level.
// Every function returns 0 on success or -1 and a message in `error` (C++ exceptions never cross).
#ifndef LOOKALIKE_CHNSW_H
#define LOOKALIKE_CHNSW_H
#include <stddef.h>
#include <stdint.h>
#ifdef __cplusplus
extern "C" {
#endif

typedef struct lk_hnsw lk_hnsw;

/// A new empty graph for `dim`-dimensional vectors, room for `capacity` (it grows when needed).
lk_hnsw *lk_hnsw_create(size_t dim, size_t capacity, size_t M, size_t efConstruction, size_t seed, char *error, size_t errorLength);
void lk_hnsw_free(lk_hnsw *h);
/// Adds or replaces `n` vectors (`labels[i]` -> row i of `vectors`) with `threads` threads.
int lk_hnsw_add(lk_hnsw *h, const uint64_t *labels, const float *vectors, size_t n, size_t threads, char *error, size_t errorLength);
/// Tombstones a label (skipped by searches, still used for routing); returns 1 if it was live, 0 otherwise.
int lk_hnsw_mark_deleted(lk_hnsw *h, uint64_t label);
/// The `k` nearest live labels to `query` with beam width `ef`, nearest first; returns how many
/// were found (<= k), or -1 on error. Safe to call from several threads at once.
long lk_hnsw_search(const lk_hnsw *h, const float *query, size_t k, size_t ef, uint64_t *labels, float *distances,
                    char *error, size_t errorLength);
/// Elements in the graph, tombstoned ones included, and the tombstoned ones alone.
size_t lk_hnsw_count(const lk_hnsw *h);
size_t lk_hnsw_deleted(const lk_hnsw *h);
size_t lk_hnsw_dim(const lk_hnsw *h);
/// Writes the labels of the live (not tombstoned) nodes, at most `capacity`; returns how many.
size_t lk_hnsw_live_labels(const lk_hnsw *h, uint64_t *labels, size_t capacity);
size_t lk_hnsw_M(const lk_hnsw *h);
size_t lk_hnsw_ef_construction(const lk_hnsw *h);
/// Bytes the graph (with its vectors) occupies in memory.
size_t lk_hnsw_memory_bytes(const lk_hnsw *h);
/// Serialised size, and serialisation into a buffer of that size (hnswlib's saveIndex layout).
size_t lk_hnsw_serialized_size(const lk_hnsw *h);
int lk_hnsw_serialize(const lk_hnsw *h, void *buffer, size_t length, char *error, size_t errorLength);
/// A graph from a serialised buffer; every size is checked against `length` before it is read.
lk_hnsw *lk_hnsw_deserialize(const void *buffer, size_t length, size_t dim, char *error, size_t errorLength);

#ifdef __cplusplus
}
#endif
#endif
