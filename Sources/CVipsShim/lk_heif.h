/* HEIF/AVIF stored thumbnails decoded with libheif directly (lk_heif.c). */
#ifndef LOOKALIKE_LK_HEIF_H
#define LOOKALIKE_LK_HEIF_H
#include <stddef.h>
#include <vips/vips.h>

/* The largest stored thumbnail of the file's primary image (from `path`, or `data`/`length` when
 * path is NULL) as an 8-bit RGB or RGBA image in memory, when it can stand in for the full
 * W x H image: at least `shortSide` on its shorter side, smaller than the image, and of the same
 * shape (orientation, aspect within 1 %). NULL otherwise or on any error (the caller then decodes
 * the image itself). */
VipsImage *lk_heif_decode_thumbnail(const char *path, const void *data, size_t length, long long W, long long H,
                                    int shortSide);
#endif
