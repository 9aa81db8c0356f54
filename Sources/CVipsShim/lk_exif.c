/* lk_exif: wraps libexif to read the few EXIF fields Lookalike shows about a photo (when it was
 * taken, with what camera, where). libexif does the parsing (byte order, IFD chains, bounds
 * checks on hostile offsets); this file only finds the EXIF block in the container, asks for
 * five tags and converts GPS degree/minute/second rationals to signed decimal degrees.
 *
 * libexif is loaded without EXIF_DATA_OPTION_FOLLOW_SPECIFICATION, which would "fix" the data by
 * inventing mandatory tags (a DateTime of now, for instance), and without
 * EXIF_DATA_OPTION_IGNORE_UNKNOWN_TAGS so that no tag a camera wrote is dropped. */
#include "lk_exif.h"

#include <stdlib.h>
#include <string.h>

#include <libexif/exif-data.h>
#include <libexif/exif-utils.h>

static const unsigned char lk_exif_header[6] = {'E', 'x', 'i', 'f', 0, 0};

/* The payload of the first APP1 segment holding "Exif\0\0", scanning only the markers before the
 * image data (EXIF is normally first, but an XMP APP1 or ICC APP2 may come before it). */
static const unsigned char *lk_jpeg_exif_segment(const unsigned char *d, size_t n, size_t *len) {
    size_t i = 2;
    while (i + 4 <= n) {
        if (d[i] != 0xFF) return NULL;
        unsigned marker = d[i + 1];
        if (marker == 0xFF) { /* fill byte */
            i++;
            continue;
        }
        if (marker == 0xD8 || (marker >= 0xD0 && marker <= 0xD7) || marker == 0x01) {
            i += 2;
            continue;
        }
        if (marker == 0xDA || marker == 0xD9) return NULL; /* image data: no EXIF before it */
        size_t seg = ((size_t)d[i + 2] << 8) | d[i + 3];
        if (seg < 2 || i + 2 + seg > n) return NULL;
        if (marker == 0xE1 && seg >= 2 + 6 && memcmp(d + i + 4, lk_exif_header, 6) == 0) {
            *len = seg - 2;
            return d + i + 4;
        }
        i += 2 + seg;
    }
    return NULL;
}

/* An ASCII tag, trimmed of trailing spaces and NULs; "" when absent or not ASCII. */
static void lk_exif_ascii(ExifContent *ifd, ExifTag tag, char *out, size_t cap) {
    ExifEntry *e = ifd != NULL ? exif_content_get_entry(ifd, tag) : NULL;
    if (e == NULL || e->data == NULL || e->size == 0 || cap == 0) return;
    if (e->format != EXIF_FORMAT_ASCII && e->format != EXIF_FORMAT_UNDEFINED) return;
    size_t k = 0;
    while (k < e->size && k + 1 < cap && e->data[k] != 0) {
        out[k] = (char)e->data[k];
        k++;
    }
    while (k > 0 && (out[k - 1] == ' ' || out[k - 1] == '\0')) k--;
    size_t start = 0;
    while (start < k && out[start] == ' ') start++;
    if (start > 0) memmove(out, out + start, k - start);
    out[k - start] = '\0';
}

/* Degrees + minutes/60 + seconds/3600 from 1..3 RATIONALs. Returns 0 when unusable (a zero
 * denominator on a non-zero part, wrong type). */
static int lk_exif_dms(ExifContent *ifd, ExifTag tag, ExifByteOrder order, double *out) {
    ExifEntry *e = exif_content_get_entry(ifd, tag);
    if (e == NULL || e->format != EXIF_FORMAT_RATIONAL || e->components < 1 || e->data == NULL) return 0;
    size_t parts = e->components < 3 ? e->components : 3;
    if (e->size < parts * 8) return 0;
    static const double scale[3] = {1.0, 60.0, 3600.0};
    double value = 0;
    for (size_t i = 0; i < parts; i++) {
        ExifRational r = exif_get_rational(e->data + 8 * i, order);
        if (r.denominator == 0) {
            if (r.numerator != 0 || i == 0) return 0; /* some writers leave unused parts as 0/0 */
            continue;
        }
        value += ((double)r.numerator / (double)r.denominator) / scale[i];
    }
    *out = value;
    return 1;
}

/* 'N'/'S'/'E'/'W' of a GPS reference tag, 0 when absent. */
static char lk_exif_ref(ExifContent *ifd, ExifTag tag) {
    ExifEntry *e = exif_content_get_entry(ifd, tag);
    if (e == NULL || e->data == NULL || e->size < 1) return 0;
    return (char)e->data[0];
}

static void lk_exif_fields(ExifData *ed, lk_photo_meta *m) {
    ExifContent *ifd0 = ed->ifd[EXIF_IFD_0], *exif = ed->ifd[EXIF_IFD_EXIF], *gps = ed->ifd[EXIF_IFD_GPS];
    lk_exif_ascii(exif, EXIF_TAG_DATE_TIME_ORIGINAL, m->date_time_original, sizeof m->date_time_original);
    lk_exif_ascii(exif, EXIF_TAG_OFFSET_TIME_ORIGINAL, m->offset_time_original, sizeof m->offset_time_original);
    lk_exif_ascii(ifd0, EXIF_TAG_MAKE, m->make, sizeof m->make);
    lk_exif_ascii(ifd0, EXIF_TAG_MODEL, m->model, sizeof m->model);
    if (gps == NULL) return;
    ExifByteOrder order = exif_data_get_byte_order(ed);
    double lat = 0, lon = 0;
    if (!lk_exif_dms(gps, EXIF_TAG_GPS_LATITUDE, order, &lat) ||
        !lk_exif_dms(gps, EXIF_TAG_GPS_LONGITUDE, order, &lon))
        return;
    char latRef = lk_exif_ref(gps, EXIF_TAG_GPS_LATITUDE_REF);
    char lonRef = lk_exif_ref(gps, EXIF_TAG_GPS_LONGITUDE_REF);
    if (latRef == 'S' || latRef == 's') lat = -lat;
    if (lonRef == 'W' || lonRef == 'w') lon = -lon;
    /* 0,0 is what devices without a fix write; out-of-range values are garbage. */
    if ((lat == 0 && lon == 0) || lat < -90 || lat > 90 || lon < -180 || lon > 180) return;
    m->has_gps = 1;
    m->gps_latitude = lat;
    m->gps_longitude = lon;
}

void lk_exif_read(const unsigned char *data, size_t n, lk_photo_meta *m) {
    if (data == NULL || n < 8 || m == NULL) return;
    const unsigned char *block = NULL;
    size_t len = 0;
    unsigned char *owned = NULL;
    if (data[0] == 0xFF && data[1] == 0xD8) {
        block = lk_jpeg_exif_segment(data, n, &len);
    } else {
        /* "Exif\0\0" + TIFF, or a bare TIFF header, possibly after a few bytes (HEIF items
         * start with a 4-byte offset, which libvips strips but other writers pad). */
        size_t limit = n < 24 ? n : 24;
        for (size_t i = 0; i + 8 <= limit && block == NULL; i++) {
            const unsigned char *p = data + i;
            if (memcmp(p, lk_exif_header, 6) == 0) {
                block = p;
                len = n - i;
            } else if ((p[0] == 'I' && p[1] == 'I' && p[2] == 42 && p[3] == 0) ||
                       (p[0] == 'M' && p[1] == 'M' && p[2] == 0 && p[3] == 42)) {
                /* libexif wants the "Exif\0\0" prefix in front of the TIFF header. */
                owned = malloc(n - i + 6);
                if (owned == NULL) return;
                memcpy(owned, lk_exif_header, 6);
                memcpy(owned + 6, p, n - i);
                block = owned;
                len = n - i + 6;
            }
        }
    }
    if (block == NULL || len < 14 || len > 0xFFFFFFFFu) {
        free(owned);
        return;
    }
    ExifData *ed = exif_data_new();
    if (ed != NULL) {
        exif_data_unset_option(ed, EXIF_DATA_OPTION_FOLLOW_SPECIFICATION);
        exif_data_unset_option(ed, EXIF_DATA_OPTION_IGNORE_UNKNOWN_TAGS);
        exif_data_load_data(ed, block, (unsigned int)len);
        lk_exif_fields(ed, m);
        exif_data_unref(ed);
    }
    free(owned);
}
