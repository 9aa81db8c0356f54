/* Internal to CVipsShim: EXIF orientation of an RGB8 buffer and the reference resize + centre
 * crop, see lk_resample.c. */
#ifndef LK_RESAMPLE_H
#define LK_RESAMPLE_H
#include <stddef.h>
#include <stdint.h>

/* Applies EXIF orientation 1..8 (as Pillow's ImageOps.exif_transpose) to an RGB8 image.
 * Returns a newly allocated buffer (or NULL on allocation failure); ow and oh receive its size. */
unsigned char *lk_orient_rgb8(const unsigned char *src, int w, int h, int orientation, int *ow, int *oh);

/* Resizes an RGB8 image (w x h, tightly packed) to nW x nH with Pillow's BILINEAR filter
 * (reducing_gap=None) and writes the centre crop x crop of the result to out. Only the pixels of
 * the crop are computed; they are bit-identical to resizing the whole image and then cropping.
 * Returns 0, or -1 on allocation failure or bad sizes. */
int lk_resize_crop_rgb8(const unsigned char *src, int w, int h, int nW, int nH, int crop, unsigned char *out);

/* EXIF orientation (1..8) from a JPEG's APP1 segment; 1 when absent or unreadable. */
int lk_jpeg_exif_orientation(const unsigned char *data, size_t n);
#endif
