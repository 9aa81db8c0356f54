/* CVLFeat: SIFT keypoints and descriptors (VLFeat's `vl_sift`, Debian's libvlfeat-dev) of an image
 * decoded and shrunk by libvips, for spatial verification of near-copies (LookalikeLibrary's
 * Verification/). One call per image: decode (EXIF-rotated, alpha flattened, longest side at most
 * `max_side`, optionally mirrored left-right), grey, then every octave's keypoints with up to four
 * orientations each. Descriptors come back as RootSIFT (L1-normalised, square-rooted: unit L2),
 * whose dot product is the Hellinger kernel. Failures are a status code plus a message; all
 * objects are released before return except the arrays in `lk_sift_features`. */
#ifndef LK_SIFT_H
#define LK_SIFT_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

#define LK_SIFT_DIMENSION 128

typedef struct {
    int count;          /* keypoints (one per orientation) */
    int width, height;  /* of the shrunk image the coordinates are in */
    float *frames;      /* count x 4: x, y, sigma (pixels), orientation (radians) */
    float *descriptors; /* count x 128, RootSIFT */
} lk_sift_features;

/* 0 on success (out filled; free with lk_sift_free), -1 with a message otherwise. At most
 * `max_keypoints` keypoints are kept, the coarsest scales first (the most repeatable). */
int lk_sift_file(const char *path, int max_side, int mirror, int max_keypoints, lk_sift_features *out,
                 char *message, size_t message_size);
int lk_sift_data(const void *data, size_t length, int max_side, int mirror, int max_keypoints,
                 lk_sift_features *out, char *message, size_t message_size);
void lk_sift_free(lk_sift_features *features);

#ifdef __cplusplus
}
#endif

#endif
