/* CVipsShim implementation: wraps libvips' variadic calls for Lookalike's decoder. It owns
 * vips initialisation (once, thread-safe, operation cache off, one worker thread per pipeline,
 * glib "VIPS" log output silenced unless LOOKALIKE_VIPS_WARNINGS is set), format sniffing by
 * magic bytes, and the decode pipeline: explicit per-format loader (never guessing from the
 * file name; HEIC/AVIF through libvips' heifload = libheif, JPEG XL through jxlload = libjxl)
 * -> header checks (bomb limit before any pixel is decoded) -> shrink-on-load for JPEG/WebP, a
 * HEIF's stored thumbnail when it is big enough -> embedded ICC profile to sRGB (HEIF/AVIF/JXL)
 * -> sRGB 8-bit -> alpha flattened on white -> antialiased linear resize to shorter side 256 ->
 * EXIF orientation -> centre crop. EXIF facts (lk_exif.c) come from the same header read.
 * Every vips object is unreffed on every path. */
#define _GNU_SOURCE
#include "lk_vips.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <vips/vips.h>
#include <turbojpeg.h>

#include "lk_exif.h"
#include "lk_heif.h"
#include "lk_resample.h"

/* ---------------------------------------------------------------- init */

static pthread_once_t lk_once = PTHREAD_ONCE_INIT;
static int lk_init_status = -1;
static int lk_log_verbose = 0;

static void lk_log_handler(const gchar *domain, GLogLevelFlags level, const gchar *message,
                           gpointer data) {
    (void)level;
    (void)data;
    if (lk_log_verbose) {
        fprintf(stderr, "%s: %s\n", domain ? domain : "vips", message ? message : "");
    }
}

static void lk_init_once(void) {
    const char *v = getenv("LOOKALIKE_VIPS_WARNINGS");
    lk_log_verbose = (v != NULL && v[0] != '\0' && strcmp(v, "0") != 0);
    g_log_set_handler("VIPS",
                      (GLogLevelFlags)(G_LOG_LEVEL_WARNING | G_LOG_LEVEL_MESSAGE |
                                       G_LOG_LEVEL_INFO | G_LOG_LEVEL_DEBUG),
                      lk_log_handler, NULL);
    if (VIPS_INIT("lookalike") != 0) {
        lk_init_status = -1;
        return;
    }
    /* Bounded memory when decoding thousands of files: no operation cache at all. */
    vips_cache_set_max(0);
    vips_cache_set_max_mem(0);
    vips_cache_set_max_files(0);
    /* Callers decode on several threads already; keep each pipeline on one worker. */
    vips_concurrency_set(1);
    lk_init_status = 0;
}

int lk_vips_init(void) {
    pthread_once(&lk_once, lk_init_once);
    return lk_init_status;
}

int lk_vips_fail(char *message, size_t size, const char *what) {
    snprintf(message, size, "%s: %s", what, vips_error_buffer());
    vips_error_clear();
    return -1;
}

/* ---------------------------------------------------------------- sniffing */

static unsigned int lk_le32(const unsigned char *p) {
    return (unsigned int)p[0] | ((unsigned int)p[1] << 8) | ((unsigned int)p[2] << 16) |
           ((unsigned int)p[3] << 24);
}

static unsigned int lk_be32(const unsigned char *p) {
    return ((unsigned int)p[0] << 24) | ((unsigned int)p[1] << 16) | ((unsigned int)p[2] << 8) |
           (unsigned int)p[3];
}

/* ISO-BMFF: a leading `ftyp` box whose major or compatible brands name a still-image HEIF
 * profile libheif decodes. Video brands (isom, mp42, qt ...) are not images. */
static int lk_sniff_ftyp(const unsigned char *b, size_t n) {
    if (n < 16 || memcmp(b + 4, "ftyp", 4) != 0) return LK_FMT_NONE;
    size_t size = lk_be32(b);
    if (size < 16) return LK_FMT_NONE;
    size_t end = size < n ? size : n;
    static const char *const heif[] = {"heic", "heix", "heim", "heis", "hevc", "hevx",
                                       "hevm", "hevs", "mif1", "msf1", "mif2", "miaf"};
    int found = LK_FMT_NONE;
    for (size_t off = 8; off + 4 <= end; off += 4) {
        if (off == 12) continue; /* minor version, not a brand */
        const unsigned char *brand = b + off;
        if (memcmp(brand, "avif", 4) == 0 || memcmp(brand, "avis", 4) == 0) return LK_FMT_AVIF;
        for (size_t i = 0; i < sizeof heif / sizeof heif[0]; i++)
            if (memcmp(brand, heif[i], 4) == 0) found = LK_FMT_HEIF;
    }
    return found;
}

int lk_sniff_bytes(const unsigned char *b, size_t n) {
    if (b == NULL) return LK_FMT_NONE;
    /* JPEG XL: bare codestream (FF 0A) or the ISO-BMFF container's signature box. */
    if (n >= 2 && b[0] == 0xFF && b[1] == 0x0A) return LK_FMT_JXL;
    static const unsigned char jxlBox[12] = {0, 0, 0, 12, 'J', 'X', 'L', ' ', 0x0D, 0x0A, 0x87, 0x0A};
    if (n >= 12 && memcmp(b, jxlBox, 12) == 0) return LK_FMT_JXL;
    int bmff = lk_sniff_ftyp(b, n);
    if (bmff != LK_FMT_NONE) return bmff;
    if (n >= 3 && b[0] == 0xFF && b[1] == 0xD8 && b[2] == 0xFF) return LK_FMT_JPEG;
    if (n >= 8 && memcmp(b, "\x89PNG\r\n\x1a\n", 8) == 0) return LK_FMT_PNG;
    if (n >= 6 && (memcmp(b, "GIF87a", 6) == 0 || memcmp(b, "GIF89a", 6) == 0)) return LK_FMT_GIF;
    if (n >= 12 && memcmp(b, "RIFF", 4) == 0 && memcmp(b + 8, "WEBP", 4) == 0) return LK_FMT_WEBP;
    if (n >= 4 && ((b[0] == 'I' && b[1] == 'I' && (b[2] == 42 || b[2] == 43) && b[3] == 0) ||
                   (b[0] == 'M' && b[1] == 'M' && b[2] == 0 && (b[3] == 42 || b[3] == 43))))
        return LK_FMT_TIFF;
    if (n >= 18 && b[0] == 'B' && b[1] == 'M') {
        /* "BM" alone is weak (a text file may start with it): require a known DIB header size. */
        unsigned int dib = lk_le32(b + 14);
        if (dib == 12 || dib == 16 || dib == 40 || dib == 52 || dib == 56 || dib == 64 ||
            dib == 108 || dib == 124)
            return LK_FMT_BMP;
    }
    return LK_FMT_NONE;
}

int lk_sniff_file(const char *path) {
    unsigned char head[LK_SNIFF_BYTES];
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return LK_FMT_NONE;
    ssize_t got = 0;
    while (got < (ssize_t)sizeof head) {
        ssize_t r = read(fd, head + got, sizeof head - (size_t)got);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) break;
        got += r;
    }
    close(fd);
    return got > 0 ? lk_sniff_bytes(head, (size_t)got) : LK_FMT_NONE;
}

/* BMP is loaded through ImageMagick, whose header read may already decode pixels: check the
 * dimensions from the BMP header ourselves first. */
static int lk_bmp_size(const unsigned char *b, size_t n, long long *w, long long *h) {
    if (n < 26) return -1;
    unsigned int dib = lk_le32(b + 14);
    if (dib == 12) {
        *w = (long long)(b[18] | (b[19] << 8));
        *h = (long long)(b[20] | (b[21] << 8));
    } else {
        int sw = (int)lk_le32(b + 18), sh = (int)lk_le32(b + 22);
        *w = sw < 0 ? -(long long)sw : sw;
        *h = sh < 0 ? -(long long)sh : sh;
    }
    return 0;
}

/* ---------------------------------------------------------------- errors */

static void lk_fail(lk_result *r, int status, const char *message) {
    r->status = status;
    snprintf(r->message, sizeof r->message, "%s", message ? message : "");
}

static int lk_contains(const char *hay, const char *needle) {
    return hay != NULL && strcasestr(hay, needle) != NULL;
}

/* Take (and clear) the vips error buffer and classify it. The buffer is process-wide, so with
 * concurrent failures a message may be another thread's; the status stays ours either way. */
static void lk_fail_vips(lk_result *r, const char *stage) {
    char *buf = vips_error_buffer_copy();
    char clean[400];
    clean[0] = '\0';
    if (buf != NULL) {
        /* one line: join lines with "; " and drop the trailing newline */
        size_t j = 0;
        for (size_t i = 0; buf[i] != '\0' && j + 3 < sizeof clean; i++) {
            if (buf[i] == '\n') {
                if (buf[i + 1] != '\0') {
                    clean[j++] = ';';
                    clean[j++] = ' ';
                }
            } else {
                clean[j++] = buf[i];
            }
        }
        clean[j] = '\0';
        g_free(buf);
    }
    int status = LK_CORRUPT;
    if (lk_contains(clean, "truncat") || lk_contains(clean, "premature end") ||
        lk_contains(clean, "unexpected end") || lk_contains(clean, "end of file") ||
        lk_contains(clean, "read error") || lk_contains(clean, "not enough data") ||
        lk_contains(clean, "out of data") || lk_contains(clean, "EOF"))
        status = LK_TRUNCATED;
    char msg[512];
    snprintf(msg, sizeof msg, "%s%s%s", stage, clean[0] ? ": " : "", clean);
    lk_fail(r, status, msg);
}

/* ---------------------------------------------------------------- loading */

/* Shrink-on-load keeps at least LK_SHRINK_MARGIN x the target short side for the final resample. */
#ifndef LK_SHRINK_MARGIN
#define LK_SHRINK_MARGIN 2
#endif

typedef struct {
    const char *path;  /* file, or NULL for a buffer */
    const void *data;
    size_t length;
} lk_input;

/* shrink: JPEG integer shrink-on-load (1, 2, 4, 8); WebP uses 1/shrink as scale.
 * thumbnail: HEIF/AVIF only, load the primary image's stored thumbnail (libvips falls back to
 * the primary image when there is none). heifload is never given `page`/`n`: left unset, it
 * loads the file's primary item, which for a multi-image HEIF is the photo itself; libheif
 * applies the irot/imir/clap transformations and libvips then drops the EXIF orientation. */
static VipsImage *lk_load(const lk_input *in, int format, int shrink, int thumbnail) {
    VipsImage *out = NULL;
    int rc = -1;
    const VipsAccess acc = VIPS_ACCESS_SEQUENTIAL;
    const VipsFailOn fail = VIPS_FAIL_ON_TRUNCATED;
    if (in->path != NULL) {
        const char *p = in->path;
        switch (format) {
        case LK_FMT_JPEG:
            rc = vips_jpegload(p, &out, "shrink", shrink, "access", acc, "fail_on", fail, NULL);
            break;
        case LK_FMT_PNG:
            rc = vips_pngload(p, &out, "access", acc, "fail_on", fail, NULL);
            break;
        case LK_FMT_GIF:
            rc = vips_gifload(p, &out, "n", 1, "access", acc, "fail_on", fail, NULL);
            break;
        case LK_FMT_WEBP:
            rc = vips_webpload(p, &out, "scale", 1.0 / shrink, "access", acc, "fail_on", fail, NULL);
            break;
        case LK_FMT_TIFF:
            rc = vips_tiffload(p, &out, "access", acc, "fail_on", fail, NULL);
            break;
        case LK_FMT_BMP:
            rc = vips_magickload(p, &out, "access", acc, "fail_on", fail, NULL);
            break;
        case LK_FMT_HEIF:
        case LK_FMT_AVIF:
            rc = vips_heifload(p, &out, "thumbnail", thumbnail, "access", acc, "fail_on", fail, NULL);
            break;
        case LK_FMT_JXL:
            rc = vips_jxlload(p, &out, "access", acc, "fail_on", fail, NULL);
            break;
        default:
            vips_error("lookalike", "unsupported format");
        }
    } else {
        const void *d = in->data;
        size_t n = in->length;
        switch (format) {
        case LK_FMT_JPEG:
            rc = vips_jpegload_buffer((void *)d, n, &out, "shrink", shrink, "access", acc,
                                      "fail_on", fail, NULL);
            break;
        case LK_FMT_PNG:
            rc = vips_pngload_buffer((void *)d, n, &out, "access", acc, "fail_on", fail, NULL);
            break;
        case LK_FMT_GIF:
            rc = vips_gifload_buffer((void *)d, n, &out, "n", 1, "access", acc, "fail_on", fail,
                                     NULL);
            break;
        case LK_FMT_WEBP:
            rc = vips_webpload_buffer((void *)d, n, &out, "scale", 1.0 / shrink, "access", acc,
                                      "fail_on", fail, NULL);
            break;
        case LK_FMT_TIFF:
            rc = vips_tiffload_buffer((void *)d, n, &out, "access", acc, "fail_on", fail, NULL);
            break;
        case LK_FMT_BMP:
            rc = vips_magickload_buffer((void *)d, n, &out, "access", acc, "fail_on", fail, NULL);
            break;
        case LK_FMT_HEIF:
        case LK_FMT_AVIF:
            rc = vips_heifload_buffer((void *)d, n, &out, "thumbnail", thumbnail, "access", acc,
                                      "fail_on", fail, NULL);
            break;
        case LK_FMT_JXL:
            rc = vips_jxlload_buffer((void *)d, n, &out, "access", acc, "fail_on", fail, NULL);
            break;
        default:
            vips_error("lookalike", "unsupported format");
        }
    }
    if (rc != 0) {
        if (out != NULL) g_object_unref(out);
        return NULL;
    }
    return out;
}

/* ISO-BMFF (HEIF, AVIF, the JPEG XL container): does a top-level box claim to extend past the
 * end of the input? Box headers only, so a few small reads even for a large file. */
static int lk_bmff_truncated(const lk_input *in) {
    int fd = -1;
    unsigned long long total = 0;
    if (in->path != NULL) {
        fd = open(in->path, O_RDONLY | O_CLOEXEC);
        if (fd < 0) return 0;
        struct stat st;
        if (fstat(fd, &st) != 0) {
            close(fd);
            return 0;
        }
        total = (unsigned long long)st.st_size;
    } else {
        total = in->length;
    }
    unsigned long long off = 0;
    int truncated = 0;
    for (int boxes = 0; off < total && boxes < 10000; boxes++) {
        unsigned char h[16];
        size_t want = total - off < sizeof h ? (size_t)(total - off) : sizeof h;
        if (want < 8) {
            truncated = 1;
            break;
        }
        if (fd >= 0) {
            if (pread(fd, h, want, (off_t)off) != (ssize_t)want) break;
        } else {
            memcpy(h, (const unsigned char *)in->data + off, want);
        }
        unsigned long long size = lk_be32(h);
        if (size == 1) { /* 64-bit size follows the type */
            if (want < 16) {
                truncated = 1;
                break;
            }
            size = ((unsigned long long)lk_be32(h + 8) << 32) | lk_be32(h + 12);
        } else if (size == 0) {
            break; /* box extends to the end of the file */
        }
        /* Not a box structure (a size below the header, a type that is not four printable
         * characters): corrupt, not truncated. */
        if (size < 8) break;
        int printable = 1;
        for (int i = 4; i < 8; i++)
            if (h[i] < 0x20 || h[i] > 0x7E) printable = 0;
        if (!printable) break;
        if (size > total - off) {
            truncated = 1;
            break;
        }
        off += size;
    }
    if (fd >= 0) close(fd);
    return truncated;
}

/* Does the input end before its format's end marker? Used to classify a failed decode as
 * truncation without relying on the (process-wide, racy) vips error text. */
static int lk_looks_truncated(const lk_input *in, int format) {
    if (format == LK_FMT_HEIF || format == LK_FMT_AVIF) return lk_bmff_truncated(in);
    if (format == LK_FMT_JXL) {
        /* Only the container has boxes to check; a bare codestream has no end marker. */
        unsigned char head[2] = {0, 0};
        if (in->path != NULL) {
            int fd = open(in->path, O_RDONLY | O_CLOEXEC);
            if (fd < 0) return 0;
            ssize_t got = pread(fd, head, 2, 0);
            close(fd);
            if (got != 2) return 0;
        } else if (in->length >= 2) {
            memcpy(head, in->data, 2);
        }
        return head[0] == 0 && head[1] == 0 ? lk_bmff_truncated(in) : 0;
    }
    unsigned char tail[16];
    size_t n = 0;
    unsigned long long total = 0;
    const unsigned char *head = NULL;
    unsigned char headBuf[12];
    if (in->path != NULL) {
        int fd = open(in->path, O_RDONLY | O_CLOEXEC);
        if (fd < 0) return 0;
        struct stat st;
        if (fstat(fd, &st) != 0) {
            close(fd);
            return 0;
        }
        total = (unsigned long long)st.st_size;
        n = total < sizeof tail ? (size_t)total : sizeof tail;
        ssize_t a = pread(fd, tail, n, (off_t)(total - n));
        ssize_t b = pread(fd, headBuf, sizeof headBuf, 0);
        close(fd);
        if (a != (ssize_t)n) return 0;
        head = b == (ssize_t)sizeof headBuf ? headBuf : NULL;
    } else {
        total = in->length;
        n = total < sizeof tail ? (size_t)total : sizeof tail;
        memcpy(tail, (const unsigned char *)in->data + (total - n), n);
        head = total >= sizeof headBuf ? (const unsigned char *)in->data : NULL;
    }
    switch (format) {
    case LK_FMT_JPEG:
        for (size_t i = 0; i + 1 < n; i++)
            if (tail[i] == 0xFF && tail[i + 1] == 0xD9) return 0;
        return 1;
    case LK_FMT_PNG:
        for (size_t i = 0; i + 4 <= n; i++)
            if (memcmp(tail + i, "IEND", 4) == 0) return 0;
        return 1;
    case LK_FMT_GIF:
        for (size_t i = 0; i < n; i++)
            if (tail[i] == 0x3B) return 0;
        return 1;
    case LK_FMT_WEBP:
        return head != NULL && (unsigned long long)lk_le32(head + 4) + 8 > total;
    case LK_FMT_BMP:
        return head != NULL && (unsigned long long)lk_le32(head + 2) > total;
    default:
        return 0;
    }
}

/* See lk_vips.h. */
int lk_vips_step(VipsImage **img, VipsImage **slot, int rc) {
    VipsImage *next = *slot;
    *slot = NULL;
    if (rc != 0 || next == NULL) {
        if (next != NULL) g_object_unref(next);
        return -1;
    }
    g_object_unref(*img);
    *img = next;
    return 0;
}

/* Pillow's target size for the shorter side `s` (floor(long * s / short + 0.5)). */
static long long lk_scaled_long(long long lng, long long shrt, int s) {
    return (long long)((double)lng * (double)s / (double)shrt + 0.5);
}

/* The reference size: shorter side `shortSide`, longer side scaled and rounded as the reference
 * does. Returns 0 when the result would exceed the pixel limit (extreme aspect ratios). */
static int lk_target_size(long long w, long long h, int shortSide, long long maxPixels, long long *tw, long long *th) {
    if (shortSide < 0) {
        /* LK_STRETCH(side): the whole image to side x side, its aspect ratio not kept. */
        *tw = *th = -shortSide;
    } else if (w <= h) {
        *tw = shortSide;
        *th = lk_scaled_long(h, w, shortSide);
    } else {
        *th = shortSide;
        *tw = lk_scaled_long(w, h, shortSide);
    }
    return !(*tw * *th > maxPixels || *tw > VIPS_MAX_COORD || *th > VIPS_MAX_COORD);
}

/* ---------------------------------------------------------------- JPEG fast path */

#define LK_FALLBACK (-1)

static void lk_reset(lk_result *r);

/* Whole input in memory (files are read; buffers used as they are). */
static unsigned char *lk_read_all(const lk_input *in, size_t *n, int *owned) {
    if (in->path == NULL) {
        *n = in->length;
        *owned = 0;
        return (unsigned char *)in->data;
    }
    FILE *f = fopen(in->path, "rb");
    if (f == NULL) return NULL;
    unsigned char *buf = NULL;
    size_t cap = 0, len = 0;
    for (;;) {
        if (len == cap) {
            size_t ncap = cap ? cap * 2 : 1 << 16;
            unsigned char *nb = realloc(buf, ncap);
            if (nb == NULL) {
                free(buf);
                fclose(f);
                return NULL;
            }
            buf = nb;
            cap = ncap;
        }
        size_t got = fread(buf + len, 1, cap - len, f);
        len += got;
        if (got == 0) break;
    }
    int err = ferror(f);
    fclose(f);
    if (err) {
        free(buf);
        return NULL;
    }
    *n = len;
    *owned = 1;
    return buf;
}

/* JPEG (YCbCr, RGB or grey) decoded with libjpeg-turbo, the decoder the reference's Pillow uses,
 * with the same defaults (accurate integer IDCT, fancy upsampling), then resized by
 * lk_resize_crop_rgb8: the reference's pixels for a fraction of the cost of a vips pipeline.
 * CMYK/YCCK JPEGs return LK_FALLBACK and go through libvips (colour management). */
static int lk_decode_jpeg_fast(const lk_input *in, int shortSide, int crop, long long maxPixels,
                               unsigned char *out, lk_result *r) {
    size_t n = 0;
    int owned = 0;
    unsigned char *data = lk_read_all(in, &n, &owned);
    if (data == NULL) return LK_FALLBACK;
    int status = LK_FALLBACK;
    unsigned char *pixels = NULL, *oriented = NULL;
    tjhandle tj = tjInitDecompress();
    int W = 0, H = 0, subsamp = 0, colorspace = 0;
    if (tj == NULL) goto done;
    if (tjDecompressHeader3(tj, data, (unsigned long)n, &W, &H, &subsamp, &colorspace) != 0) {
        if (lk_looks_truncated(in, LK_FMT_JPEG)) {
            lk_fail(r, LK_TRUNCATED, "file is truncated (JPEG header incomplete)");
            status = LK_TRUNCATED;
        }
        goto done; /* otherwise let libvips report what is wrong */
    }
    if (colorspace == TJCS_CMYK || colorspace == TJCS_YCCK) goto done;
    int orientation = lk_jpeg_exif_orientation(data, n);
    int swap = orientation >= 5 && orientation <= 8;
    r->width = swap ? H : W;
    r->height = swap ? W : H;
    if (W <= 0 || H <= 0) {
        lk_fail(r, LK_CORRUPT, "image has no pixels");
        status = LK_CORRUPT;
        goto done;
    }
    if ((long long)W * H > maxPixels) {
        lk_fail(r, LK_TOO_LARGE, "image is larger than the pixel limit");
        status = LK_TOO_LARGE;
        goto done;
    }
    /* Reference geometry on the oriented image. */
    long long tW, tH;
    if (!lk_target_size(r->width, r->height, shortSide, maxPixels, &tW, &tH)) {
        lk_fail(r, LK_TOO_LARGE, "aspect ratio too extreme to resize");
        status = LK_TOO_LARGE;
        goto done;
    }
    /* Shrink-on-load (DCT scaling), keeping at least LK_SHRINK_MARGIN x the target. */
    long long shorter = W < H ? W : H;
    int shrink = 1;
    for (int s = 8; s >= 2; s /= 2) {
        if (shorter >= (long long)s * LK_SHRINK_MARGIN * abs(shortSide)) {
            shrink = s;
            break;
        }
    }
    tjscalingfactor sf = {1, shrink};
    int sw = TJSCALED(W, sf), sh = TJSCALED(H, sf);
    pixels = malloc((size_t)sw * (size_t)sh * 3);
    if (pixels == NULL) {
        lk_fail(r, LK_UNREADABLE, "out of memory");
        status = LK_UNREADABLE;
        goto done;
    }
    if (tjDecompress2(tj, data, (unsigned long)n, pixels, sw, 0, sh, TJPF_RGB, 0) != 0) {
        const char *why = tjGetErrorStr2(tj);
        int truncated = lk_looks_truncated(in, LK_FMT_JPEG) || (why != NULL && strstr(why, "Premature end") != NULL);
        if (tjGetErrorCode(tj) == TJERR_WARNING && !truncated) {
            /* A recoverable oddity (e.g. extraneous bytes): the image decoded; keep it. */
        } else if (truncated) {
            lk_fail(r, LK_TRUNCATED, "file is truncated");
            status = LK_TRUNCATED;
            goto done;
        } else {
            char msg[400];
            snprintf(msg, sizeof msg, "corrupt JPEG: %s", why ? why : "decode failed");
            lk_fail(r, LK_CORRUPT, msg);
            status = LK_CORRUPT;
            goto done;
        }
    }
    const unsigned char *src = pixels;
    int w = sw, h = sh;
    if (orientation > 1) {
        oriented = lk_orient_rgb8(pixels, sw, sh, orientation, &w, &h);
        if (oriented == NULL) {
            lk_fail(r, LK_UNREADABLE, "out of memory");
            status = LK_UNREADABLE;
            goto done;
        }
        src = oriented;
    }
    if (lk_resize_crop_rgb8(src, w, h, (int)tW, (int)tH, crop, out) != 0) {
        lk_fail(r, LK_UNREADABLE, "out of memory while resizing");
        status = LK_UNREADABLE;
        goto done;
    }
    lk_exif_read(data, n, &r->meta);
    r->status = LK_OK;
    r->message[0] = '\0';
    status = LK_OK;
done:
    free(oriented);
    free(pixels);
    if (tj != NULL) tjDestroy(tj);
    if (owned) free(data);
    return status;
}

/* ---------------------------------------------------------------- HEIF, ICC, EXIF helpers */

static int lk_is_heif(int format) {
    return format == LK_FMT_HEIF || format == LK_FMT_AVIF;
}

static int lk_heif_thumbnails_enabled(void) {
    const char *v = getenv("LOOKALIKE_HEIF_THUMBNAILS");
    return v == NULL || strcmp(v, "0") != 0;
}

/* HEIF/AVIF/JPEG XL photos carry a colour profile (phones: Display P3). Converting it to sRGB is
 * per-pixel, so it is done on the 224x224 result, not on 12 megapixels. JPEG/PNG/... are left
 * as they were: the reference (Pillow) ignores their profiles and their pixels must match it.
 * A profile lcms cannot use leaves the pixels as decoded (a bad tag should not lose a photo). */
static void lk_icc_to_srgb(VipsImage *source, unsigned char *rgb, int side) {
    const void *profile = NULL;
    size_t length = 0;
    if (vips_image_get_typeof(source, VIPS_META_ICC_NAME) == 0 ||
        vips_image_get_blob(source, VIPS_META_ICC_NAME, &profile, &length) != 0 ||
        profile == NULL || length == 0)
        return;
    VipsImage *crop = vips_image_new_from_memory(rgb, (size_t)side * side * 3, side, side, 3,
                                                 VIPS_FORMAT_UCHAR);
    if (crop == NULL) {
        vips_error_clear();
        return;
    }
    /* The blob is copied: `source` may be released before `crop`. */
    void *copy = g_memdup2(profile, length);
    vips_image_set_blob(crop, VIPS_META_ICC_NAME, (VipsCallbackFn)g_free, copy, length);
    VipsImage *srgb = NULL;
    if (vips_icc_transform(crop, &srgb, "srgb", "embedded", TRUE, "intent", VIPS_INTENT_PERCEPTUAL,
                           "depth", 8, NULL) == 0 && srgb != NULL &&
        vips_image_get_bands(srgb) == 3 && vips_image_get_format(srgb) == VIPS_FORMAT_UCHAR) {
        size_t size = 0;
        unsigned char *pixels = vips_image_write_to_memory(srgb, &size);
        if (pixels != NULL && size == (size_t)side * side * 3) memcpy(rgb, pixels, size);
        g_free(pixels);
    }
    vips_error_clear();
    if (srgb != NULL) g_object_unref(srgb);
    g_object_unref(crop);
}

/* A TIFF is itself EXIF-structured (IFD0 with Make/Model, pointers to the Exif and GPS IFDs),
 * but libvips' tiffload does not hand those IFDs on: libexif reads the file's start directly.
 * IFDs normally sit at the start; a file whose EXIF lies beyond the first LK_TIFF_EXIF_BYTES
 * loses those facts (libexif bounds-checks every offset). */
#define LK_TIFF_EXIF_BYTES (4u << 20)

static void lk_tiff_meta(const lk_input *in, lk_photo_meta *meta) {
    if (in->path == NULL) {
        size_t n = in->length < LK_TIFF_EXIF_BYTES ? in->length : LK_TIFF_EXIF_BYTES;
        lk_exif_read((const unsigned char *)in->data, n, meta);
        return;
    }
    int fd = open(in->path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return;
    unsigned char *buf = malloc(LK_TIFF_EXIF_BYTES);
    ssize_t got = 0;
    while (buf != NULL && got < (ssize_t)LK_TIFF_EXIF_BYTES) {
        ssize_t k = read(fd, buf + got, LK_TIFF_EXIF_BYTES - (size_t)got);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) break;
        got += k;
    }
    close(fd);
    if (buf != NULL && got > 0) lk_exif_read(buf, (size_t)got, meta);
    free(buf);
}

/* EXIF facts of a loaded header (libvips keeps the raw block as "exif-data"). */
static void lk_meta_from_image(const lk_input *in, int format, VipsImage *img, lk_photo_meta *meta) {
    if (format == LK_FMT_TIFF) {
        lk_tiff_meta(in, meta);
        return;
    }
    const void *exif = NULL;
    size_t length = 0;
    if (vips_image_get_typeof(img, VIPS_META_EXIF_NAME) != 0 &&
        vips_image_get_blob(img, VIPS_META_EXIF_NAME, &exif, &length) == 0 && exif != NULL)
        lk_exif_read((const unsigned char *)exif, length, meta);
}

/* ---------------------------------------------------------------- decode */

/* A loader failed: the vips error, as truncation when the file ends inside its structure. */
static int lk_fail_load(lk_result *r, const lk_input *in, int format, const unsigned char *head,
                        const char *stage) {
    lk_fail_vips(r, stage);
    if (lk_looks_truncated(in, format)) {
        r->status = LK_TRUNCATED;
    } else if (format == LK_FMT_JXL && head[0] == 0xFF) {
        /* A bare JPEG XL codestream has no end marker or sizes to tell truncation from damage,
         * and libjxl only says that it failed. */
        size_t used = strlen(r->message);
        snprintf(r->message + used, sizeof r->message - used, " (JPEG XL data damaged or cut short)");
    }
    return r->status;
}

static const char *const lk_formats_list = "JPEG, PNG, GIF, WebP, BMP, TIFF, HEIC/HEIF, AVIF, JPEG XL";

/* The start shared by decoding and header-only reads: libvips ready, the format known by content
 * (recorded in r). Returns LK_FMT_NONE with the failure in r when either is not the case. */
static int lk_start(const unsigned char *head, size_t headLen, lk_result *r) {
    if (lk_vips_init() != 0) {
        lk_fail(r, LK_UNREADABLE, "libvips failed to initialise");
        return LK_FMT_NONE;
    }
    int format = lk_sniff_bytes(head, headLen);
    r->format = format;
    if (format == LK_FMT_NONE) {
        char msg[160];
        snprintf(msg, sizeof msg, "not a supported image (%s)", lk_formats_list);
        lk_fail(r, LK_NOT_IMAGE, msg);
    }
    return format;
}


/* Normalises a decoded image to 8-bit sRGB with exactly 3 bands: colour (grey, 16-bit, CMYK via
 * its profile or vips' default), alpha composited on white, extra bands dropped. Replaces *img;
 * returns -1 when a step fails (the vips error is left for the caller). */
static int lk_to_srgb8(VipsImage **img) {
    VipsImage *next = NULL;
    /* Colour: everything to 8-bit sRGB (grey, 16-bit, CMYK via its profile or vips' default). */
    if (vips_colourspace_issupported(*img)) {
        VipsInterpretation interp = vips_image_guess_interpretation(*img);
        if (interp != VIPS_INTERPRETATION_sRGB || vips_image_get_format(*img) != VIPS_FORMAT_UCHAR) {
            next = NULL;
            if (lk_vips_step(img, &next, vips_colourspace(*img, &next, VIPS_INTERPRETATION_sRGB, NULL)) != 0)
                return -1;
        }
    }
    if (vips_image_get_format(*img) != VIPS_FORMAT_UCHAR) {
        next = NULL;
        if (lk_vips_step(img, &next, vips_cast_uchar(*img, &next, NULL)) != 0) return -1;
    }
    /* Alpha: composite on white. */
    if (vips_image_hasalpha(*img)) {
        VipsArrayDouble *white = vips_array_double_newv(1, 255.0);
        next = NULL;
        int rc = vips_flatten(*img, &next, "background", white, "max_alpha", 255.0, NULL);
        vips_area_unref(VIPS_AREA(white));
        if (lk_vips_step(img, &next, rc) != 0) return -1;
        if (vips_image_get_format(*img) != VIPS_FORMAT_UCHAR) {
            next = NULL;
            if (lk_vips_step(img, &next, vips_cast_uchar(*img, &next, NULL)) != 0) return -1;
        }
    }
    /* Exactly 3 bands. */
    int bands = vips_image_get_bands(*img);
    if (bands < 3) {
        VipsImage *first = NULL;
        if (bands != 1) {
            if (vips_extract_band(*img, &first, 0, NULL) != 0) return -1;
        } else {
            first = *img;
            g_object_ref(first);
        }
        VipsImage *parts[3] = {first, first, first};
        next = NULL;
        int rc = vips_bandjoin(parts, &next, 3, NULL);
        g_object_unref(first);
        if (lk_vips_step(img, &next, rc) != 0) return -1;
    } else if (bands > 3) {
        next = NULL;
        if (lk_vips_step(img, &next, vips_extract_band(*img, &next, 0, "n", 3, NULL)) != 0) return -1;
    }
    return 0;
}

/* A region of the oriented image in fractions (w <= 0: the whole image). */
typedef struct {
    double x, y, w, h;
} lk_region;

/* Cuts `region` (fractions) out of *img, clamped to the image. Replaces *img; -1 on failure. */
static int lk_extract_region(VipsImage **img, const lk_region *region) {
    int iw = vips_image_get_width(*img), ih = vips_image_get_height(*img);
    int left = (int)(region->x * iw), top = (int)(region->y * ih);
    int cw = (int)(region->w * iw + 0.5), ch = (int)(region->h * ih + 0.5);
    if (left < 0) left = 0;
    if (top < 0) top = 0;
    if (left > iw - 1) left = iw - 1;
    if (top > ih - 1) top = ih - 1;
    if (cw < 1) cw = 1;
    if (ch < 1) ch = 1;
    if (left + cw > iw) cw = iw - left;
    if (top + ch > ih) ch = ih - top;
    VipsImage *next = NULL;
    return lk_vips_step(img, &next, vips_extract_area(*img, &next, left, top, cw, ch, NULL));
}

/* Decodes *img's pixels into memory (errors from a truncated or corrupt file surface here) and
 * resizes + centre-crops them into `out`. Returns LK_OK, -1 when vips failed (the caller turns
 * the vips error into a reason), or another status already recorded in `r`. */
static int lk_pixels_resized(VipsImage *img, int tW, int tH, int crop, unsigned char *out, lk_result *r) {
    size_t size = 0;
    int w = vips_image_get_width(img), h = vips_image_get_height(img);
    unsigned char *pixels = vips_image_write_to_memory(img, &size);
    if (pixels == NULL) return -1;
    if (size != (size_t)w * (size_t)h * 3) {
        g_free(pixels);
        lk_fail(r, LK_CORRUPT, "unexpected pixel layout after decode");
        return r->status;
    }
    int rc = lk_resize_crop_rgb8(pixels, w, h, tW, tH, crop, out);
    g_free(pixels);
    if (rc != 0) {
        lk_fail(r, LK_CORRUPT, "out of memory while resizing");
        return r->status;
    }
    return LK_OK;
}

static int lk_decode(const lk_input *in, const unsigned char *head, size_t headLen, int shortSide,
                     int crop, long long maxPixels, int allowThumbnail, const lk_region *region,
                     unsigned char *out, lk_result *r) {
    const int cropped = region != NULL && region->w > 0 && region->h > 0;
    int format = lk_start(head, headLen, r);
    if (format == LK_FMT_NONE) return r->status;
    if (format == LK_FMT_BMP) {
        long long bw = 0, bh = 0;
        if (lk_bmp_size(head, headLen, &bw, &bh) != 0 || bw <= 0 || bh <= 0) {
            lk_fail(r, LK_CORRUPT, "invalid BMP header");
            return r->status;
        }
        if (bw * bh > maxPixels) {
            r->width = bw > INT32_MAX ? INT32_MAX : (int)bw;
            r->height = bh > INT32_MAX ? INT32_MAX : (int)bh;
            lk_fail(r, LK_TOO_LARGE, "image is larger than the pixel limit");
            return r->status;
        }
    }

    /* Uncropped JPEGs keep the Pillow-exact path; a region goes through libvips. */
    if (format == LK_FMT_JPEG && !cropped) {
        int rc = lk_decode_jpeg_fast(in, shortSide, crop, maxPixels, out, r);
        if (rc != LK_FALLBACK) return rc;
        lk_reset(r);
        r->format = format;
    }

    /* Header only: loaders are lazy, no pixels are decoded yet. */
    VipsImage *img = lk_load(in, format, 1, 0);
    if (img == NULL) {
        return lk_fail_load(r, in, format, head, "cannot read header");
    }
    long long W = vips_image_get_width(img), H = vips_image_get_height(img);
    int swap = vips_image_get_orientation_swap(img);
    r->width = (int)(swap ? H : W);
    r->height = (int)(swap ? W : H);
    if (W <= 0 || H <= 0) {
        g_object_unref(img);
        lk_fail(r, LK_CORRUPT, "image has no pixels");
        return r->status;
    }
    if (W * H > maxPixels) {
        g_object_unref(img);
        lk_fail(r, LK_TOO_LARGE, "image is larger than the pixel limit");
        return r->status;
    }
    /* Reference geometry, computed in the stored frame (it is symmetric in width/height). */
    long long nW, nH;
    if (!lk_target_size(W, H, shortSide, maxPixels, &nW, &nH)) {
        g_object_unref(img);
        lk_fail(r, LK_TOO_LARGE, "aspect ratio too extreme to resize");
        return r->status;
    }
    lk_meta_from_image(in, format, img, &r->meta);
    /* HEIF/AVIF (and JPEG XL here) carry their profile; kept for after the resize. */
    VipsImage *profileSource = NULL;
    if (lk_is_heif(format) || format == LK_FMT_JXL) {
        profileSource = img;
        g_object_ref(profileSource);
    }

    /* Shrink-on-load, keeping at least twice the target so the final resample antialiases. With
     * a region, the region's shorter side is what gets resized to the target. */
    long long shorter = W < H ? W : H;
    long long rW = 0, rH = 0; /* region size in original (oriented) pixels */
    if (cropped) {
        rW = (long long)(region->w * (double)r->width + 0.5);
        rH = (long long)(region->h * (double)r->height + 0.5);
        if (rW < 1) rW = 1;
        if (rH < 1) rH = 1;
        shorter = rW < rH ? rW : rH;
        if (!lk_target_size(rW, rH, shortSide, maxPixels, &nW, &nH)) {
            g_object_unref(img);
            lk_fail(r, LK_TOO_LARGE, "region's aspect ratio too extreme to resize");
            return r->status;
        }
    }
    int shrink = 1;
    if (format == LK_FMT_JPEG || format == LK_FMT_WEBP) {
        for (int s = 8; s >= 2; s /= 2) {
            if (shorter >= (long long)s * LK_SHRINK_MARGIN * abs(shortSide)) {
                shrink = s;
                break;
            }
        }
    }
    if (shrink > 1) {
        VipsImage *small = lk_load(in, format, shrink, 0);
        if (small == NULL) {
            g_object_unref(img);
            if (profileSource != NULL) g_object_unref(profileSource);
            return lk_fail_load(r, in, format, head, "cannot read header");
        }
        g_object_unref(img);
        img = small;
    }
    /* HEVC and AV1 have no shrink-on-load: a big enough stored thumbnail replaces the image. Big
     * enough means the network's input (the centre crop, or the region asked for) gets at least
     * one thumbnail pixel per input pixel, up to the 256/224 margin: a phone's 320x240 thumbnail
     * qualifies (measured against the full decode: scripts/bench_formats.py, docs/performance.md,
     * "Photo formats: HEIC and AVIF"). */
    int thumbMinSide = crop;
    if (cropped) {
        double fraction = region->w < region->h ? region->w : region->h;
        double need = fraction > 0 ? ceil((double)abs(shortSide) / fraction) : (double)INT32_MAX;
        thumbMinSide = need < (double)INT32_MAX ? (int)need : INT32_MAX;
    }
    if (lk_is_heif(format) && allowThumbnail && shorter > thumbMinSide && lk_heif_thumbnails_enabled()) {
        VipsImage *thumb = lk_heif_decode_thumbnail(in->path, in->data, in->length, W, H, thumbMinSide);
        if (thumb != NULL) {
            g_object_unref(img);
            img = thumb;
            r->used_thumbnail = 1;
        }
    }
    int orientation = vips_image_get_orientation(img);
    if (lk_to_srgb8(&img) != 0) goto vips_failed;
    VipsImage *next = NULL;

    /* EXIF orientation first (as the reference does), then the pixels into memory: errors from
     * a truncated or corrupt file surface here. */
    if (orientation > 1 && orientation <= 8) {
        vips_image_set_int(img, VIPS_META_ORIENTATION, orientation);
        next = NULL;
        if (lk_vips_step(&img, &next, vips_autorot(img, &next, NULL)) != 0) goto vips_failed;
    }
    if (cropped && lk_extract_region(&img, region) != 0) goto vips_failed;
    {
        /* Target size of the ORIGINAL (oriented) image: shrink-on-load only changed the source; a
         * region's target was computed in the oriented frame already. */
        int tW = cropped ? (int)nW : (int)(swap ? nH : nW), tH = cropped ? (int)nH : (int)(swap ? nW : nH);
        int pixelsStatus = lk_pixels_resized(img, tW, tH, crop, out, r);
        if (pixelsStatus < 0) goto vips_failed;
        g_object_unref(img);
        if (pixelsStatus != LK_OK) {
            if (profileSource != NULL) g_object_unref(profileSource);
            return r->status;
        }
    }
    if (profileSource != NULL) {
        lk_icc_to_srgb(profileSource, out, crop);
        g_object_unref(profileSource);
    }
    r->status = LK_OK;
    r->message[0] = '\0';
    return LK_OK;

vips_failed:
    g_object_unref(img);
    if (profileSource != NULL) g_object_unref(profileSource);
    if (r->used_thumbnail) {
        /* A damaged thumbnail must not cost the photo: decode the image itself. */
        vips_error_clear();
        lk_reset(r);
        return lk_decode(in, head, headLen, shortSide, crop, maxPixels, 0, region, out, r);
    }
    return lk_fail_load(r, in, format, head, "cannot decode pixels");
}

/* Header and EXIF only. BMP (no EXIF) is answered from its own header: its loader
 * (ImageMagick) may decode pixels just to read one. */
static int lk_metadata(const lk_input *in, const unsigned char *head, size_t headLen, lk_result *r) {
    int format = lk_start(head, headLen, r);
    if (format == LK_FMT_NONE) return r->status;
    if (format == LK_FMT_BMP) {
        long long bw = 0, bh = 0;
        if (lk_bmp_size(head, headLen, &bw, &bh) != 0 || bw <= 0 || bh <= 0) {
            lk_fail(r, LK_CORRUPT, "invalid BMP header");
            return r->status;
        }
        r->width = bw > INT32_MAX ? INT32_MAX : (int)bw;
        r->height = bh > INT32_MAX ? INT32_MAX : (int)bh;
        r->status = LK_OK;
        return LK_OK;
    }
    VipsImage *img = lk_load(in, format, 1, 0);
    if (img == NULL) {
        return lk_fail_load(r, in, format, head, "cannot read header");
    }
    long long W = vips_image_get_width(img), H = vips_image_get_height(img);
    int swap = vips_image_get_orientation_swap(img);
    r->width = (int)(swap ? H : W);
    r->height = (int)(swap ? W : H);
    if (W <= 0 || H <= 0) {
        g_object_unref(img);
        lk_fail(r, LK_CORRUPT, "image has no pixels");
        return r->status;
    }
    lk_meta_from_image(in, format, img, &r->meta);
    g_object_unref(img);
    r->status = LK_OK;
    r->message[0] = '\0';
    return LK_OK;
}

static void lk_reset(lk_result *r) {
    memset(r, 0, sizeof *r);
}

/* Opens a file for decoding: the typed failures (missing, directory, empty ...) and its first
 * LK_SNIFF_BYTES bytes. Returns LK_OK or the status already recorded in r. */
static int lk_read_head(const char *path, unsigned char *head, size_t *headLen, lk_result *r) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        lk_fail(r, (e == ENOENT || e == ENOTDIR) ? LK_NOT_FOUND : LK_UNREADABLE, strerror(e));
        return r->status;
    }
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        lk_fail(r, LK_UNREADABLE, strerror(e));
        return r->status;
    }
    if (S_ISDIR(st.st_mode)) {
        close(fd);
        lk_fail(r, LK_UNREADABLE, "is a directory");
        return r->status;
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        lk_fail(r, LK_UNREADABLE, "not a regular file");
        return r->status;
    }
    if (st.st_size == 0) {
        close(fd);
        lk_fail(r, LK_EMPTY, "file is empty");
        return r->status;
    }
    ssize_t got = 0;
    while (got < (ssize_t)LK_SNIFF_BYTES) {
        ssize_t n = read(fd, head + got, LK_SNIFF_BYTES - (size_t)got);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
            int e = errno;
            close(fd);
            lk_fail(r, LK_UNREADABLE, strerror(e));
            return r->status;
        }
        if (n == 0) break;
        got += n;
    }
    close(fd);
    *headLen = (size_t)got;
    return LK_OK;
}

int lk_decode_file(const char *path, int shortSide, int crop, long long maxPixels,
                   int allowThumbnail, unsigned char *out, lk_result *r) {
    lk_reset(r);
    unsigned char head[LK_SNIFF_BYTES];
    size_t got = 0;
    if (lk_read_head(path, head, &got, r) != LK_OK) return r->status;
    lk_input in = {path, NULL, 0};
    return lk_decode(&in, head, got, shortSide, crop, maxPixels, allowThumbnail, NULL, out, r);
}

int lk_decode_buffer(const void *data, size_t length, int shortSide, int crop, long long maxPixels,
                     int allowThumbnail, unsigned char *out, lk_result *r) {
    lk_reset(r);
    if (data == NULL || length == 0) {
        lk_fail(r, LK_EMPTY, "buffer is empty");
        return r->status;
    }
    lk_input in = {NULL, data, length};
    size_t headLen = length < LK_SNIFF_BYTES ? length : LK_SNIFF_BYTES;
    return lk_decode(&in, (const unsigned char *)data, headLen, shortSide, crop, maxPixels,
                     allowThumbnail, NULL, out, r);
}

int lk_metadata_file(const char *path, lk_result *r) {
    lk_reset(r);
    unsigned char head[LK_SNIFF_BYTES];
    size_t got = 0;
    if (lk_read_head(path, head, &got, r) != LK_OK) return r->status;
    lk_input in = {path, NULL, 0};
    return lk_metadata(&in, head, got, r);
}

int lk_metadata_buffer(const void *data, size_t length, lk_result *r) {
    lk_reset(r);
    if (data == NULL || length == 0) {
        lk_fail(r, LK_EMPTY, "buffer is empty");
        return r->status;
    }
    lk_input in = {NULL, data, length};
    size_t headLen = length < LK_SNIFF_BYTES ? length : LK_SNIFF_BYTES;
    return lk_metadata(&in, (const unsigned char *)data, headLen, r);
}

int lk_decode_buffer_region(const void *data, size_t length, int shortSide, int crop,
                            long long maxPixels, double x, double y, double w, double h,
                            unsigned char *out, lk_result *r) {
    lk_reset(r);
    if (data == NULL || length == 0) {
        lk_fail(r, LK_EMPTY, "buffer is empty");
        return r->status;
    }
    lk_input in = {NULL, data, length};
    lk_region region = {x, y, w, h};
    size_t headLen = length < LK_SNIFF_BYTES ? length : LK_SNIFF_BYTES;
    return lk_decode(&in, (const unsigned char *)data, headLen, shortSide, crop, maxPixels, 0, &region, out, r);
}

/* ---------------------------------------------------------------- thumbnails */

int lk_thumbnail_file(const char *path, int size, int quality, unsigned char **out, size_t *length,
                      lk_result *r) {
    lk_reset(r);
    *out = NULL;
    *length = 0;
    if (lk_vips_init() != 0) {
        lk_fail(r, LK_UNREADABLE, "libvips failed to initialise");
        return r->status;
    }
    int format = lk_sniff_file(path);
    r->format = format;
    if (format == LK_FMT_NONE) {
        lk_fail(r, access(path, R_OK) == 0 ? LK_NOT_IMAGE : LK_NOT_FOUND, "not a readable image");
        return r->status;
    }
    /* vips_thumbnail: shrink-on-load (JPEG DCT scaling, WebP scale), EXIF orientation applied,
     * never upsized; the longer side becomes `size`. */
    VipsImage *img = NULL;
    if (vips_thumbnail(path, &img, size, "size", VIPS_SIZE_DOWN, NULL) != 0) {
        lk_fail_vips(r, "cannot make a thumbnail");
        return r->status;
    }
    r->width = vips_image_get_width(img);
    r->height = vips_image_get_height(img);
    VipsImage *next = NULL;
    if (vips_image_hasalpha(img)) {
        VipsArrayDouble *white = vips_array_double_newv(1, 255.0);
        int rc = vips_flatten(img, &next, "background", white, NULL);
        vips_area_unref(VIPS_AREA(white));
        if (lk_vips_step(&img, &next, rc) != 0) goto failed;
    }
    if (vips_image_get_format(img) != VIPS_FORMAT_UCHAR) {
        /* 16-bit images: to 8-bit sRGB by value range, not by clipping. */
        next = NULL;
        if (vips_colourspace_issupported(img) &&
            lk_vips_step(&img, &next, vips_colourspace(img, &next, VIPS_INTERPRETATION_sRGB, NULL)) != 0)
            goto failed;
        next = NULL;
        if (vips_image_get_format(img) != VIPS_FORMAT_UCHAR &&
            lk_vips_step(&img, &next, vips_cast_uchar(img, &next, NULL)) != 0)
            goto failed;
    }
    void *buffer = NULL;
    size_t n = 0;
    if (vips_jpegsave_buffer(img, &buffer, &n, "Q", quality, "strip", TRUE, "optimize_coding", TRUE, NULL) != 0)
        goto failed;
    g_object_unref(img);
    *out = buffer;
    *length = n;
    r->status = LK_OK;
    return LK_OK;
failed:
    g_object_unref(img);
    lk_fail_vips(r, "cannot encode the thumbnail");
    return r->status;
}

void lk_free(void *pointer) { g_free(pointer); }
