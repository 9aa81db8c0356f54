/* See include/lk_sift.h. */
#include "lk_sift.h"
#include "lk_vips.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <vips/vips.h>
#include <vl/sift.h>

/* Grey float pixels (0..255) of a shrunk image, or -1. */
static int lk_sift_grey(VipsImage *img, int mirror, float **pixels, int *width, int *height,
                        char *message, size_t size) {
    VipsImage *next = NULL;
    if (vips_image_hasalpha(img) && lk_vips_step(&img, &next, vips_flatten(img, &next, NULL)) != 0) goto failed;
    /* Through 8-bit sRGB (16-bit, CMYK and the like) to one grey band, 0..255. */
    if (lk_vips_step(&img, &next, vips_colourspace(img, &next, VIPS_INTERPRETATION_sRGB, NULL)) != 0) goto failed;
    if (lk_vips_step(&img, &next, vips_colourspace(img, &next, VIPS_INTERPRETATION_B_W, NULL)) != 0) goto failed;
    if (vips_image_get_bands(img) > 1 && lk_vips_step(&img, &next, vips_extract_band(img, &next, 0, NULL)) != 0) goto failed;
    if (lk_vips_step(&img, &next, vips_cast(img, &next, VIPS_FORMAT_FLOAT, NULL)) != 0) goto failed;
    if (mirror && lk_vips_step(&img, &next, vips_flip(img, &next, VIPS_DIRECTION_HORIZONTAL, NULL)) != 0) goto failed;
    size_t bytes = 0;
    *pixels = vips_image_write_to_memory(img, &bytes);
    if (*pixels == NULL) goto failed;
    *width = vips_image_get_width(img);
    *height = vips_image_get_height(img);
    g_object_unref(img);
    return 0;
failed:
    g_object_unref(img);
    return lk_vips_fail(message, size, "decode");
}

/* RootSIFT: L1-normalise, then square root (unit L2). */
static void lk_root(float *d) {
    float sum = 0;
    for (int i = 0; i < LK_SIFT_DIMENSION; i++) sum += d[i];
    if (sum <= 0) return;
    for (int i = 0; i < LK_SIFT_DIMENSION; i++) d[i] = sqrtf(d[i] / sum);
}

static int lk_sift_run(float *pixels, int width, int height, int max_keypoints, lk_sift_features *out,
                       char *message, size_t size) {
    memset(out, 0, sizeof *out);
    out->width = width;
    out->height = height;
    /* Small images (a thumbnail-sized query) start one octave up, as Lowe does, to find enough
     * keypoints; larger ones at their own resolution. */
    int longest = width > height ? width : height;
    VlSiftFilt *filter = vl_sift_new(width, height, -1, 3, longest < 200 ? -1 : 0);
    if (filter == NULL) {
        snprintf(message, size, "sift: cannot allocate for %dx%d", width, height);
        return -1;
    }
    vl_sift_set_edge_thresh(filter, 10);
    /* Collect per octave, finest first; keep the coarsest when over the cap. */
    int capacity = 256, count = 0;
    float *frames = malloc(sizeof(float) * 4 * capacity);
    float *descriptors = malloc(sizeof(float) * LK_SIFT_DIMENSION * capacity);
    if (frames == NULL || descriptors == NULL) goto oom;
    int status = vl_sift_process_first_octave(filter, pixels);
    while (status != VL_ERR_EOF) {
        vl_sift_detect(filter);
        const VlSiftKeypoint *keys = vl_sift_get_keypoints(filter);
        int n = vl_sift_get_nkeypoints(filter);
        for (int i = 0; i < n; i++) {
            double angles[4];
            int m = vl_sift_calc_keypoint_orientations(filter, angles, keys + i);
            for (int j = 0; j < m; j++) {
                if (count == capacity) {
                    capacity *= 2;
                    float *f = realloc(frames, sizeof(float) * 4 * capacity);
                    if (f == NULL) goto oom;
                    frames = f;
                    float *d = realloc(descriptors, sizeof(float) * LK_SIFT_DIMENSION * capacity);
                    if (d == NULL) goto oom;
                    descriptors = d;
                }
                float *desc = descriptors + (size_t)count * LK_SIFT_DIMENSION;
                vl_sift_calc_keypoint_descriptor(filter, desc, keys + i, angles[j]);
                lk_root(desc);
                frames[count * 4 + 0] = (float)keys[i].x;
                frames[count * 4 + 1] = (float)keys[i].y;
                frames[count * 4 + 2] = (float)keys[i].sigma;
                frames[count * 4 + 3] = (float)angles[j];
                count++;
            }
        }
        status = vl_sift_process_next_octave(filter);
    }
    vl_sift_delete(filter);
    if (max_keypoints > 0 && count > max_keypoints) {
        /* Finest octaves come first: drop them. */
        int drop = count - max_keypoints;
        memmove(frames, frames + (size_t)drop * 4, sizeof(float) * 4 * max_keypoints);
        memmove(descriptors, descriptors + (size_t)drop * LK_SIFT_DIMENSION, sizeof(float) * LK_SIFT_DIMENSION * max_keypoints);
        count = max_keypoints;
    }
    out->count = count;
    out->frames = frames;
    out->descriptors = descriptors;
    return 0;
oom:
    vl_sift_delete(filter);
    free(frames);
    free(descriptors);
    snprintf(message, size, "sift: out of memory");
    return -1;
}

static int lk_sift_image(VipsImage *img, int mirror, int max_keypoints, lk_sift_features *out,
                         char *message, size_t size) {
    float *pixels = NULL;
    int width = 0, height = 0;
    if (lk_sift_grey(img, mirror, &pixels, &width, &height, message, size) != 0) return -1;
    int rc = lk_sift_run(pixels, width, height, max_keypoints, out, message, size);
    g_free(pixels);
    return rc;
}

int lk_sift_file(const char *path, int max_side, int mirror, int max_keypoints, lk_sift_features *out,
                 char *message, size_t message_size) {
    memset(out, 0, sizeof *out);
    if (lk_vips_init() != 0) return lk_vips_fail(message, message_size, "libvips");
    VipsImage *img = NULL;
    if (vips_thumbnail(path, &img, max_side, "height", max_side, "size", VIPS_SIZE_DOWN, NULL) != 0)
        return lk_vips_fail(message, message_size, path);
    return lk_sift_image(img, mirror, max_keypoints, out, message, message_size);
}

int lk_sift_data(const void *data, size_t length, int max_side, int mirror, int max_keypoints,
                 lk_sift_features *out, char *message, size_t message_size) {
    memset(out, 0, sizeof *out);
    if (lk_vips_init() != 0) return lk_vips_fail(message, message_size, "libvips");
    VipsImage *img = NULL;
    if (vips_thumbnail_buffer((void *)data, length, &img, max_side, "height", max_side, "size", VIPS_SIZE_DOWN, NULL) != 0)
        return lk_vips_fail(message, message_size, "image");
    return lk_sift_image(img, mirror, max_keypoints, out, message, message_size);
}

void lk_sift_free(lk_sift_features *features) {
    if (features == NULL) return;
    free(features->frames);
    free(features->descriptors);
    features->frames = NULL;
    features->descriptors = NULL;
    features->count = 0;
}
