/* lk_words: a visual vocabulary for SIFT descriptors (VLFeat's k-means and kd-forest): training
 * the words (k-means, approximate nearest centres through a kd-forest, random initial centres from
 * a fixed seed) and quantising descriptors to their nearest word. Used to find the library images
 * that share local features with a query (an inverted file of words), which a global descriptor
 * misses when an edit (an occluding square, a rotation) changes the picture's overall look. */
#ifndef LK_WORDS_H
#define LK_WORDS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Trains `words` centres (words x dimension floats into `centres`) on `count` rows of `data`.
 * 0 on success, -1 with a message. */
int lk_words_train(const float *data, size_t count, size_t dimension, size_t words, uint32_t seed,
                   float *centres, char *message, size_t message_size);

typedef struct lk_words_quantizer lk_words_quantizer;

/* A quantiser over `words` centres (copied); NULL when out of memory. Thread-safe for queries. */
lk_words_quantizer *lk_words_quantizer_new(const float *centres, size_t words, size_t dimension);
/* The nearest word of each of `count` rows (approximate: a bounded kd-forest search). */
void lk_words_quantize(lk_words_quantizer *q, const float *data, size_t count, uint32_t *out);
/* The `nearest` nearest words of each row (out: count x nearest, nearest first). */
void lk_words_quantize_nearest(lk_words_quantizer *q, const float *data, size_t count, size_t nearest, uint32_t *out);
void lk_words_quantizer_free(lk_words_quantizer *q);

#ifdef __cplusplus
}
#endif

#endif
