#include "lk_words.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <vl/generic.h>
#include <vl/kdtree.h>
#include <vl/kmeans.h>
#include <vl/random.h>

/* Bounded kd-forest search: enough for near-copies (the same patch lands in the same word far
 * more often than not) at a fraction of an exhaustive scan. */
#define LK_WORDS_COMPARISONS 64
#define LK_WORDS_TREES 2
#define LK_WORDS_ITERATIONS 12

int lk_words_train(const float *data, size_t count, size_t dimension, size_t words, uint32_t seed,
                   float *centres, char *message, size_t message_size) {
    if (count < words || words == 0 || dimension == 0) {
        snprintf(message, message_size, "%zu descriptors cannot train %zu words", count, words);
        return -1;
    }
    VlKMeans *km = vl_kmeans_new(VL_TYPE_FLOAT, VlDistanceL2);
    if (km == NULL) {
        snprintf(message, message_size, "out of memory");
        return -1;
    }
    vl_rand_seed(vl_get_rand(), seed);
    vl_kmeans_set_algorithm(km, VlKMeansANN);
    vl_kmeans_set_max_num_comparisons(km, LK_WORDS_COMPARISONS);
    vl_kmeans_set_num_trees(km, LK_WORDS_TREES);
    vl_kmeans_set_max_num_iterations(km, LK_WORDS_ITERATIONS);
    vl_kmeans_init_centers_with_rand_data(km, data, dimension, count, words);
    vl_kmeans_refine_centers(km, data, count);
    memcpy(centres, vl_kmeans_get_centers(km), words * dimension * sizeof(float));
    vl_kmeans_delete(km);
    return 0;
}

struct lk_words_quantizer {
    VlKDForest *forest;
    /* Searchers hold their own search state, but making and deleting one edits the forest's list. */
    pthread_mutex_t searchers;
    float *centres;
    size_t dimension;
};

lk_words_quantizer *lk_words_quantizer_new(const float *centres, size_t words, size_t dimension) {
    lk_words_quantizer *q = calloc(1, sizeof *q);
    if (q == NULL) return NULL;
    q->dimension = dimension;
    pthread_mutex_init(&q->searchers, NULL);
    q->centres = malloc(words * dimension * sizeof(float));
    q->forest = vl_kdforest_new(VL_TYPE_FLOAT, dimension, LK_WORDS_TREES, VlDistanceL2);
    if (q->centres == NULL || q->forest == NULL) {
        lk_words_quantizer_free(q);
        return NULL;
    }
    memcpy(q->centres, centres, words * dimension * sizeof(float));
    /* The forest's trees are randomised: seeded, every process builds the same ones, so a
     * descriptor lands in the same word when the library is made and when it is searched (the
     * bounded search is approximate, and different trees answer differently near borders). */
    vl_rand_seed(vl_get_rand(), 0x5EED);
    vl_kdforest_build(q->forest, words, q->centres);
    vl_kdforest_set_max_num_comparisons(q->forest, LK_WORDS_COMPARISONS);
    return q;
}

void lk_words_quantize_nearest(lk_words_quantizer *q, const float *data, size_t count, size_t nearest, uint32_t *out) {
    VlKDForestNeighbor found[8];
    if (nearest > 8) nearest = 8;
    pthread_mutex_lock(&q->searchers);
    VlKDForestSearcher *searcher = vl_kdforest_new_searcher(q->forest);
    pthread_mutex_unlock(&q->searchers);
    for (size_t i = 0; i < count; i++) {
        memset(found, 0, sizeof found);
        vl_size n = vl_kdforestsearcher_query(searcher, found, nearest, data + i * q->dimension);
        for (size_t k = 0; k < nearest; k++) out[i * nearest + k] = (uint32_t)found[k < n ? k : 0].index;
    }
    pthread_mutex_lock(&q->searchers);
    vl_kdforestsearcher_delete(searcher);
    pthread_mutex_unlock(&q->searchers);
}

void lk_words_quantize(lk_words_quantizer *q, const float *data, size_t count, uint32_t *out) {
    /* One searcher per call: the forest is shared read-only by concurrent calls. */
    pthread_mutex_lock(&q->searchers);
    VlKDForestSearcher *searcher = vl_kdforest_new_searcher(q->forest);
    pthread_mutex_unlock(&q->searchers);
    for (size_t i = 0; i < count; i++) {
        VlKDForestNeighbor nearest = {0, 0};
        vl_kdforestsearcher_query(searcher, &nearest, 1, data + i * q->dimension);
        out[i] = (uint32_t)nearest.index;
    }
    pthread_mutex_lock(&q->searchers);
    vl_kdforestsearcher_delete(searcher);
    pthread_mutex_unlock(&q->searchers);
}

void lk_words_quantizer_free(lk_words_quantizer *q) {
    if (q == NULL) return;
    if (q->forest) vl_kdforest_delete(q->forest);
    pthread_mutex_destroy(&q->searchers);
    free(q->centres);
    free(q);
}
