/* See include/lk_transform.h. Every step owns its intermediate image and releases it; the final
 * JPEG buffer is the caller's. */
#include "lk_transform.h"
#include "lk_vips.h"
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <vips/vips.h>

/* Decoded as 3-band sRGB uchar, EXIF orientation applied, alpha flattened (caller unrefs); NULL
 * with the reason in libvips' error buffer. Both the edits and the twin check start from it. */
static VipsImage *lk_load_rgb(const char *path) {
    VipsImage *img = vips_image_new_from_file(path, "access", VIPS_ACCESS_RANDOM, NULL);
    if (img == NULL) return NULL;
    VipsImage *next = NULL;
    if (lk_vips_step(&img, &next, vips_autorot(img, &next, NULL)) != 0) goto failed;
    if (vips_image_hasalpha(img)) {
        next = NULL;
        if (lk_vips_step(&img, &next, vips_flatten(img, &next, NULL)) != 0) goto failed;
    }
    next = NULL;
    if (lk_vips_step(&img, &next, vips_colourspace(img, &next, VIPS_INTERPRETATION_sRGB, NULL)) != 0) goto failed;
    if (vips_image_get_bands(img) > 3) {
        next = NULL;
        if (lk_vips_step(&img, &next, vips_extract_band(img, &next, 0, "n", 3, NULL)) != 0) goto failed;
    }
    return img;
failed:
    g_object_unref(img);
    return NULL;
}

int lk_transform_file(const char *path, int kind, double amount, unsigned char **out, size_t *length,
                      char *message, size_t messageSize) {
    if (lk_vips_init() != 0) return lk_vips_fail(message, messageSize, "libvips");
    VipsImage *img = lk_load_rgb(path);
    if (img == NULL) return lk_vips_fail(message, messageSize, "load");
    int w = vips_image_get_width(img), h = vips_image_get_height(img);
    int quality = 92;
    VipsImage *next = NULL;
    switch (kind) {
    case LK_TX_CROP_CENTER:
    case LK_TX_CROP_CORNER: {
        int cw = (int)(w * sqrt(0.5)), ch = (int)(h * sqrt(0.5));
        int left = kind == LK_TX_CROP_CENTER ? (w - cw) / 2 : 0, top = kind == LK_TX_CROP_CENTER ? (h - ch) / 2 : 0;
        if (lk_vips_step(&img, &next, vips_extract_area(img, &next, left, top, cw, ch, NULL)) != 0) goto failed;
        break;
    }
    case LK_TX_ROTATE:
        if (fabs(amount - 90) < 1e-9) {
            if (lk_vips_step(&img, &next, vips_rot90(img, &next, NULL)) != 0) goto failed;
        } else {
            /* vips_rotate expands the canvas to hold the whole rotated image (corners black). */
            if (lk_vips_step(&img, &next, vips_rotate(img, &next, amount, NULL)) != 0) goto failed;
        }
        break;
    case LK_TX_BRIGHTNESS:
    case LK_TX_CONTRAST: {
        double a = amount, b = kind == LK_TX_CONTRAST ? 128.0 * (1 - amount) : 0;
        if (lk_vips_step(&img, &next, vips_linear1(img, &next, a, b, "uchar", TRUE, NULL)) != 0) goto failed;
        break;
    }
    case LK_TX_SCALE:
        if (lk_vips_step(&img, &next, vips_resize(img, &next, amount, NULL)) != 0) goto failed;
        break;
    case LK_TX_JPEG:
        quality = (int)amount;
        break;
    case LK_TX_BLUR:
        if (lk_vips_step(&img, &next, vips_gaussblur(img, &next, amount, NULL)) != 0) goto failed;
        break;
    case LK_TX_OCCLUDE: {
        int side = (int)sqrt(amount * (double)w * (double)h);
        if (side > w) side = w;
        if (side > h) side = h;
        VipsImage *grey = NULL;
        if (vips_black(&grey, side, side, "bands", 3, NULL) != 0) goto failed;
        VipsImage *filled = NULL;
        int rc = vips_linear1(grey, &filled, 1.0, 128.0, "uchar", TRUE, NULL);
        g_object_unref(grey);
        if (rc != 0) goto failed;
        rc = vips_insert(img, filled, &next, (w - side) / 2, (h - side) / 2, NULL);
        g_object_unref(filled);
        if (lk_vips_step(&img, &next, rc) != 0) goto failed;
        break;
    }
    case LK_TX_FLIP:
        if (lk_vips_step(&img, &next, vips_flip(img, &next, VIPS_DIRECTION_HORIZONTAL, NULL)) != 0) goto failed;
        break;
    case LK_TX_TEXT: {
        /* Three lines of text about a tenth of the image high each, added (saturating) to the
         * photo: text pixels turn white, the rest is unchanged. */
        VipsImage *mask = NULL, *placed = NULL, *mask3 = NULL, *painted = NULL;
        int dpi = (int)(h / 3.0 * 72 / 40);
        if (dpi < 20) dpi = 20;
        if (vips_text(&mask, "Lookalike test\nthree lines of text\nover the photo", "width", w * 9 / 10, "dpi", dpi, NULL) != 0)
            goto failed;
        int mw = vips_image_get_width(mask), mh = vips_image_get_height(mask);
        int rc = vips_embed(mask, &placed, mw < w ? (w - mw) / 2 : 0, mh < h ? (h - mh) / 2 : 0, w, h, NULL);
        g_object_unref(mask);
        if (rc != 0) goto failed;
        VipsImage *bands[3] = {placed, placed, placed};
        rc = vips_bandjoin(bands, &mask3, 3, NULL);
        g_object_unref(placed);
        if (rc != 0) goto failed;
        rc = vips_add(img, mask3, &painted, NULL);
        g_object_unref(mask3);
        if (rc != 0) goto failed;
        next = NULL;
        rc = vips_cast_uchar(painted, &next, NULL);
        g_object_unref(painted);
        if (lk_vips_step(&img, &next, rc) != 0) goto failed;
        break;
    }
    default:
        g_object_unref(img);
        snprintf(message, messageSize, "unknown transformation %d", kind);
        return -1;
    }
    if (vips_image_get_format(img) != VIPS_FORMAT_UCHAR) {
        next = NULL;
        if (lk_vips_step(&img, &next, vips_cast_uchar(img, &next, NULL)) != 0) goto failed;
    }
    void *buffer = NULL;
    size_t size = 0;
    if (vips_jpegsave_buffer(img, &buffer, &size, "Q", quality, "strip", TRUE, NULL) != 0) goto failed;
    g_object_unref(img);
    *out = buffer;
    *length = size;
    return 0;

failed:
    g_object_unref(img);
    return lk_vips_fail(message, messageSize, "transform");
}

void lk_transform_free(void *buffer) { g_free(buffer); }

static int lk_mean_abs_difference(VipsImage *a, VipsImage *b, double *out) {
    VipsImage *d = NULL, *m = NULL;
    if (vips_subtract(a, b, &d, NULL) != 0) return -1;
    int rc = vips_abs(d, &m, NULL);
    g_object_unref(d);
    if (rc != 0) return -1;
    rc = vips_avg(m, out, NULL);
    g_object_unref(m);
    return rc;
}

int lk_pixel_difference(const char *pathA, const char *pathB, double *direct, double *mirrored,
                        char *message, size_t messageSize) {
    if (lk_vips_init() != 0) return lk_vips_fail(message, messageSize, "libvips");
    *direct = 255;
    *mirrored = 255;
    VipsImage *a = lk_load_rgb(pathA);
    if (a == NULL) return lk_vips_fail(message, messageSize, "load");
    VipsImage *b = lk_load_rgb(pathB);
    if (b == NULL) {
        g_object_unref(a);
        return lk_vips_fail(message, messageSize, "load");
    }
    int rc = 0;
    if (vips_image_get_width(a) == vips_image_get_width(b) && vips_image_get_height(a) == vips_image_get_height(b)) {
        VipsImage *flipped = NULL;
        rc = lk_mean_abs_difference(a, b, direct);
        if (rc == 0) rc = vips_flip(b, &flipped, VIPS_DIRECTION_HORIZONTAL, NULL);
        if (rc == 0) {
            rc = lk_mean_abs_difference(a, flipped, mirrored);
            g_object_unref(flipped);
        }
    }
    g_object_unref(a);
    g_object_unref(b);
    return rc == 0 ? 0 : lk_vips_fail(message, messageSize, "compare");
}
