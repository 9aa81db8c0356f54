/* lk_transform: the edits a robustness benchmark applies to a photo before searching with it
 * (crops, rotations, exposure, contrast, scale, heavy JPEG compression, blur, an occluding square,
 * a mirror image, overlaid text), done with libvips and returned as JPEG bytes. */
#ifndef LK_TRANSFORM_H
#define LK_TRANSFORM_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

enum {
    LK_TX_CROP_CENTER = 0,  /* centre crop keeping 50 % of the area */
    LK_TX_CROP_CORNER = 1,  /* top-left crop keeping 50 % of the area */
    LK_TX_ROTATE = 2,       /* rotate by `amount` degrees, canvas expanded (90: exact quarter turn) */
    LK_TX_BRIGHTNESS = 3,   /* multiply every channel by `amount` */
    LK_TX_CONTRAST = 4,     /* scale the distance to mid-grey by `amount` */
    LK_TX_SCALE = 5,        /* each side scaled by `amount` */
    LK_TX_JPEG = 6,         /* re-encode as JPEG at quality `amount` */
    LK_TX_BLUR = 7,         /* Gaussian blur of sigma `amount` px */
    LK_TX_OCCLUDE = 8,      /* a grey square covering `amount` of the area, centred */
    LK_TX_FLIP = 9,         /* horizontal mirror */
    LK_TX_TEXT = 10         /* three lines of white text across the image */
};

/* Loads `path` (EXIF orientation applied), transforms it, and returns JPEG bytes in *out (free with
 * lk_transform_free). Returns 0, or -1 with a reason in `message`. */
int lk_transform_file(const char *path, int kind, double amount, unsigned char **out, size_t *length,
                      char *message, size_t messageSize);
void lk_transform_free(void *buffer);

/* Whether two image files hold the same picture, pixel for pixel up to re-encoding: the mean
 * absolute difference per channel (0-255) of the two decoded images (EXIF orientation applied),
 * directly into *direct and with the second one mirrored left-right into *mirrored. Images of
 * different sizes are not the same picture: both are set to 255. Returns 0, or -1 with a reason. */
int lk_pixel_difference(const char *pathA, const char *pathB, double *direct, double *mirrored,
                        char *message, size_t messageSize);

#ifdef __cplusplus
}
#endif

#endif
