/* CVipsShim: the only C code between Lookalike and libvips. libvips' API is variadic
 * (name/value option lists ending in NULL), which Swift cannot call, so this target exposes a
 * few plain functions: one-time thread-safe initialisation (cache off, one worker per decode,
 * VIPS-WARNING log lines silenced), a magic-byte sniffer (JPEG, PNG, GIF, WebP, BMP, TIFF,
 * HEIC/HEIF, AVIF, JPEG XL), a complete "file or buffer -> 224x224 RGB8" decode that applies the
 * reference geometry (shorter side 256, centre crop), and a header-only read of the photo's
 * EXIF facts (capture time, camera, GPS; parsed by libexif). Failures are a status code plus a
 * message. All vips objects are released before return. */
#ifndef LK_VIPS_H
#define LK_VIPS_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Formats recognised by content (magic bytes; ISO-BMFF `ftyp` brands for HEIF/AVIF). */
enum {
    LK_FMT_NONE = 0,
    LK_FMT_JPEG = 1,
    LK_FMT_PNG = 2,
    LK_FMT_GIF = 3,
    LK_FMT_WEBP = 4,
    LK_FMT_BMP = 5,
    LK_FMT_TIFF = 6,
    LK_FMT_HEIF = 7, /* HEIC (HEVC) and other HEIF brands, decoded by libheif */
    LK_FMT_AVIF = 8, /* AV1 in HEIF, decoded by libheif */
    LK_FMT_JXL = 9   /* JPEG XL codestream or container, decoded by libjxl */
};

/* Bytes the sniffer looks at (an ftyp box lists its compatible brands within them). */
#define LK_SNIFF_BYTES 64

/* Decode outcome. */
enum {
    LK_OK = 0,
    LK_NOT_FOUND = 1,
    LK_EMPTY = 2,
    LK_NOT_IMAGE = 3,
    LK_TRUNCATED = 4,
    LK_CORRUPT = 5,
    LK_TOO_LARGE = 6,
    LK_UNREADABLE = 7
};

/* What the file says about the photo, from EXIF; empty strings / has_gps 0 when absent. */
typedef struct {
    char date_time_original[24];  /* EXIF DateTimeOriginal, "YYYY:MM:DD HH:MM:SS" as stored */
    char offset_time_original[8]; /* EXIF OffsetTimeOriginal, "+HH:MM" as stored */
    char make[64];
    char model[64];
    int has_gps;
    double gps_latitude;  /* decimal degrees, north positive */
    double gps_longitude; /* decimal degrees, east positive */
} lk_photo_meta;

typedef struct {
    int status;        /* LK_OK or an error code above */
    int format;        /* LK_FMT_* detected from content */
    int width;         /* original width after EXIF orientation (also set for LK_TOO_LARGE) */
    int height;        /* original height after EXIF orientation */
    int used_thumbnail; /* 1 when a HEIF's stored thumbnail was decoded instead of the image */
    char message[512]; /* human-readable reason when status != LK_OK */
    lk_photo_meta meta; /* EXIF facts, filled when status is LK_OK */
} lk_result;

/* Initialise libvips once (thread-safe, idempotent). Returns 0 on success. */
int lk_vips_init(void);

/* For the shims' own C code (lk_vips.c, lk_transform.c, CVLFeat's lk_sift.c). One step of a
 * libvips pipeline: replaces *img by *slot (taking ownership) when rc == 0, else returns -1 and
 * keeps *img. The slot is passed by address so that it is read after the operation (argument
 * evaluation order in C is unspecified). */
struct _VipsImage;
int lk_vips_step(struct _VipsImage **img, struct _VipsImage **slot, int rc);
/* Writes "what: <libvips' error buffer>" into message, clears the buffer, returns -1. */
int lk_vips_fail(char *message, size_t size, const char *what);

/* Format from the first bytes of a file (needs up to LK_SNIFF_BYTES bytes; fewer is fine). */
int lk_sniff_bytes(const unsigned char *bytes, size_t count);

/* Format of the file at path by content, LK_FMT_NONE when unreadable or not recognised. */
int lk_sniff_file(const char *path);

/* Decode a file / an in-memory buffer. `out` receives crop*crop*3 bytes (RGB, row-major)
 * when status is LK_OK. shortSide/crop are the reference geometry (256 / 224: shorter side 256,
 * centre crop 224); a negative shortSide, -crop, stretches the whole image to crop x crop instead
 * (aspect ratio not kept: nothing is cut off);
 * maxPixels is the decompression-bomb limit on width*height from the header. With
 * allowThumbnail, a HEIF/AVIF whose stored thumbnail has the image's shape and a shorter side of
 * at least crop (224: a phone's 320x240 thumbnail qualifies; with a region, enough that the
 * region keeps shortSide pixels) is decoded from that thumbnail (HEVC/AV1 have no shrink-on-load); the
 * environment variable LOOKALIKE_HEIF_THUMBNAILS=0 turns that off process-wide (benchmarks). */
int lk_decode_file(const char *path, int shortSide, int crop, long long maxPixels,
                   int allowThumbnail, unsigned char *out, lk_result *result);
int lk_decode_buffer(const void *data, size_t length, int shortSide, int crop,
                     long long maxPixels, int allowThumbnail, unsigned char *out,
                     lk_result *result);

/* Header and EXIF only, no pixel decode: fills result->format, width/height (after orientation)
 * and result->meta. Same statuses as decoding, except that no size limit applies. */
int lk_metadata_file(const char *path, lk_result *result);
int lk_metadata_buffer(const void *data, size_t length, lk_result *result);

/* Like lk_decode_buffer, but only the region (x, y, w, h in fractions of the image after EXIF
 * orientation) is resized to the reference geometry: a search for part of a photo. Always goes
 * through libvips (the Pillow-exact JPEG path is for whole images). */
int lk_decode_buffer_region(const void *data, size_t length, int shortSide, int crop,
                            long long maxPixels, double x, double y, double w, double h,
                            unsigned char *out, lk_result *result);

/* A JPEG thumbnail of the image file at path, longer side `size` (never upsized), EXIF orientation
 * applied, alpha flattened on white, metadata stripped. On LK_OK *out holds *length bytes that
 * the caller frees with lk_free; result->width/height are the thumbnail's. */
int lk_thumbnail_file(const char *path, int size, int quality, unsigned char **out, size_t *length,
                      lk_result *result);
void lk_free(void *pointer);

#ifdef __cplusplus
}
#endif

#endif
