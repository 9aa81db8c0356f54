/* lk_encode: JPEG encoding of RGB8 pixels with libjpeg-turbo (already linked for decoding), for
 * small previews such as the thumbnails embedded in evaluation reports. */
#ifndef LK_ENCODE_H
#define LK_ENCODE_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Encodes width*height*3 RGB bytes as a baseline JPEG. On success returns 0 and sets *out (free
 * it with lk_encode_free) and *length; on failure returns -1. */
int lk_jpeg_encode_rgb(const unsigned char *rgb, int width, int height, int quality,
                       unsigned char **out, size_t *length);
void lk_encode_free(unsigned char *buffer);

#ifdef __cplusplus
}
#endif

#endif
