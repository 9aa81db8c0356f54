/* See include/lk_encode.h. */
#include "lk_encode.h"
#include <turbojpeg.h>

int lk_jpeg_encode_rgb(const unsigned char *rgb, int width, int height, int quality,
                       unsigned char **out, size_t *length) {
    if (!rgb || !out || !length || width <= 0 || height <= 0) return -1;
    tjhandle tj = tjInitCompress();
    if (!tj) return -1;
    unsigned char *buffer = NULL;
    unsigned long size = 0;
    int status = tjCompress2(tj, rgb, width, 0, height, TJPF_RGB, &buffer, &size, TJSAMP_420, quality,
                             TJFLAG_FASTDCT);
    tjDestroy(tj);
    if (status != 0) {
        if (buffer) tjFree(buffer);
        return -1;
    }
    *out = buffer;
    *length = (size_t)size;
    return 0;
}

void lk_encode_free(unsigned char *buffer) {
    if (buffer) tjFree(buffer);
}
