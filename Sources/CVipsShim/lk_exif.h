/* Internal to CVipsShim: the photo facts a person asks about (capture time, camera, GPS) read
 * from an EXIF block with libexif, see lk_exif.c. */
#ifndef LK_EXIF_H
#define LK_EXIF_H
#include <stddef.h>

#include "lk_vips.h"

/* Reads DateTimeOriginal, OffsetTimeOriginal, Make, Model and the GPS position from `data`,
 * which may be a whole JPEG stream, an APP1 payload ("Exif\0\0" + TIFF), a bare TIFF-structured
 * EXIF block (PNG eXIf, WebP EXIF) or a HEIF Exif item (a few bytes before the TIFF header).
 * Fields absent or unreadable are left empty; `meta` is not cleared first. */
void lk_exif_read(const unsigned char *data, size_t n, lk_photo_meta *meta);
#endif
