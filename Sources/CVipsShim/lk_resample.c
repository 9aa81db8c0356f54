/* The reference resampling, done here instead of in libvips: Pillow's two-pass BILINEAR resample
 * (triangle filter widened by the scale when reducing, 22-bit fixed-point coefficients, rounding
 * to 8 bits between the horizontal and the vertical pass) computed only for the 224x224 centre
 * crop, plus EXIF orientation. It reproduces the reference peer's pixels exactly for the same
 * decoded input, and costs a fraction of a millisecond for a Caltech-size photo, where building
 * a vips pipeline of resize + crop took several (measured: the whole decode went from 5.8 to 0.8 ms
 * an image, commit afe078c; docs/architecture.md, "Preprocessing", describes the path). The
 * algorithm follows Pillow's documented behaviour (libImaging/Resample.c); no code is copied. */
#include "lk_resample.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define LK_PRECISION_BITS (32 - 8 - 2)

static double lk_triangle(double x) {
    if (x < 0.0) x = -x;
    return x < 1.0 ? 1.0 - x : 0.0;
}

/* Coefficients for outSize output samples from inSize input samples: for each output sample,
 * the first input index, the number of taps, and ksize fixed-point weights. */
typedef struct {
    int ksize;
    int *first;
    int *count;
    int *weight;
} lk_coeffs;

static void lk_coeffs_free(lk_coeffs *c) {
    free(c->first);
    free(c->count);
    free(c->weight);
}

static int lk_coeffs_make(int inSize, int outSize, lk_coeffs *c) {
    double scale = (double)inSize / outSize;
    double filterscale = scale < 1.0 ? 1.0 : scale;
    double support = 1.0 * filterscale; /* triangle support is 1 */
    int ksize = (int)ceil(support) * 2 + 1;
    c->ksize = ksize;
    c->first = malloc(sizeof(int) * (size_t)outSize);
    c->count = malloc(sizeof(int) * (size_t)outSize);
    c->weight = calloc((size_t)outSize * (size_t)ksize, sizeof(int));
    double *k = malloc(sizeof(double) * (size_t)ksize);
    if (!c->first || !c->count || !c->weight || !k) {
        free(k);
        lk_coeffs_free(c);
        return -1;
    }
    for (int xx = 0; xx < outSize; xx++) {
        double center = (xx + 0.5) * scale;
        double ss = 1.0 / filterscale;
        int xmin = (int)(center - support + 0.5);
        if (xmin < 0) xmin = 0;
        int xmax = (int)(center + support + 0.5);
        if (xmax > inSize) xmax = inSize;
        xmax -= xmin;
        if (xmax > ksize) xmax = ksize;
        double ww = 0.0;
        for (int x = 0; x < xmax; x++) {
            k[x] = lk_triangle((x + xmin - center + 0.5) * ss);
            ww += k[x];
        }
        for (int x = 0; x < xmax; x++) {
            double v = ww != 0.0 ? k[x] / ww : k[x];
            c->weight[xx * ksize + x] = v < 0 ? (int)(-0.5 + v * (1 << LK_PRECISION_BITS))
                                              : (int)(0.5 + v * (1 << LK_PRECISION_BITS));
        }
        c->first[xx] = xmin;
        c->count[xx] = xmax;
    }
    free(k);
    return 0;
}

static inline unsigned char lk_clip8(int v) {
    if (v >= (1 << LK_PRECISION_BITS << 8)) return 255;
    if (v <= 0) return 0;
    return (unsigned char)(v >> LK_PRECISION_BITS);
}

int lk_resize_crop_rgb8(const unsigned char *src, int w, int h, int nW, int nH, int crop, unsigned char *out) {
    if (w <= 0 || h <= 0 || nW < crop || nH < crop || crop <= 0) return -1;
    const int cx = (nW - crop) / 2, cy = (nH - crop) / 2;
    const int doH = nW != w, doV = nH != h;
    lk_coeffs hc = {0}, vc = {0};
    if (doH && lk_coeffs_make(w, nW, &hc) != 0) return -1;
    if (doV && lk_coeffs_make(h, nH, &vc) != 0) {
        lk_coeffs_free(&hc);
        return -1;
    }
    /* Source rows the vertical pass reads for the crop's rows. */
    int row0 = doV ? vc.first[cy] : cy;
    int row1 = doV ? vc.first[cy + crop - 1] + vc.count[cy + crop - 1] : cy + crop;
    int rows = row1 - row0;
    /* Horizontal pass: the crop's columns of rows row0..row1 (8-bit, as Pillow's intermediate). */
    unsigned char *mid = malloc((size_t)rows * (size_t)crop * 3);
    if (!mid) {
        lk_coeffs_free(&hc);
        lk_coeffs_free(&vc);
        return -1;
    }
    for (int y = 0; y < rows; y++) {
        const unsigned char *in = src + (size_t)(row0 + y) * (size_t)w * 3;
        unsigned char *o = mid + (size_t)y * (size_t)crop * 3;
        if (!doH) {
            memcpy(o, in + (size_t)cx * 3, (size_t)crop * 3);
            continue;
        }
        for (int xx = 0; xx < crop; xx++) {
            const int ox = cx + xx, xmin = hc.first[ox], n = hc.count[ox];
            const int *k = hc.weight + (size_t)ox * (size_t)hc.ksize;
            int s0 = 1 << (LK_PRECISION_BITS - 1), s1 = s0, s2 = s0;
            const unsigned char *p = in + (size_t)xmin * 3;
            for (int x = 0; x < n; x++) {
                s0 += p[x * 3 + 0] * k[x];
                s1 += p[x * 3 + 1] * k[x];
                s2 += p[x * 3 + 2] * k[x];
            }
            o[xx * 3 + 0] = lk_clip8(s0);
            o[xx * 3 + 1] = lk_clip8(s1);
            o[xx * 3 + 2] = lk_clip8(s2);
        }
    }
    /* Vertical pass over the intermediate rows: taps outer, a whole row of sums inner, so the
     * inner loop is a contiguous multiply-add the compiler vectorises. */
    int *acc = malloc(sizeof(int) * (size_t)crop * 3);
    if (!acc) {
        free(mid);
        lk_coeffs_free(&hc);
        lk_coeffs_free(&vc);
        return -1;
    }
    const int rowLen = crop * 3;
    for (int yy = 0; yy < crop; yy++) {
        unsigned char *o = out + (size_t)yy * (size_t)rowLen;
        if (!doV) {
            memcpy(o, mid + (size_t)yy * (size_t)rowLen, (size_t)rowLen);
            continue;
        }
        const int oy = cy + yy, ymin = vc.first[oy] - row0, n = vc.count[oy];
        const int *k = vc.weight + (size_t)oy * (size_t)vc.ksize;
        for (int i = 0; i < rowLen; i++) acc[i] = 1 << (LK_PRECISION_BITS - 1);
        for (int y = 0; y < n; y++) {
            const unsigned char *row = mid + (size_t)(ymin + y) * (size_t)rowLen;
            const int ky = k[y];
            for (int i = 0; i < rowLen; i++) acc[i] += row[i] * ky;
        }
        for (int i = 0; i < rowLen; i++) o[i] = lk_clip8(acc[i]);
    }
    free(acc);
    free(mid);
    lk_coeffs_free(&hc);
    lk_coeffs_free(&vc);
    return 0;
}

unsigned char *lk_orient_rgb8(const unsigned char *src, int w, int h, int orientation, int *ow, int *oh) {
    const int swap = orientation >= 5 && orientation <= 8;
    const int W = swap ? h : w, H = swap ? w : h;
    unsigned char *dst = malloc((size_t)W * (size_t)H * 3);
    if (!dst) return NULL;
    for (int y = 0; y < H; y++) {
        for (int x = 0; x < W; x++) {
            int sx, sy;
            switch (orientation) {
            case 2: sx = w - 1 - x; sy = y; break;             /* mirror horizontal */
            case 3: sx = w - 1 - x; sy = h - 1 - y; break;     /* rotate 180 */
            case 4: sx = x; sy = h - 1 - y; break;             /* mirror vertical */
            case 5: sx = y; sy = x; break;                     /* transpose */
            case 6: sx = y; sy = h - 1 - x; break;             /* rotate 90 clockwise */
            case 7: sx = w - 1 - y; sy = h - 1 - x; break;     /* transverse */
            case 8: sx = w - 1 - y; sy = x; break;             /* rotate 90 counter-clockwise */
            default: sx = x; sy = y; break;
            }
            memcpy(dst + ((size_t)y * (size_t)W + (size_t)x) * 3, src + ((size_t)sy * (size_t)w + (size_t)sx) * 3, 3);
        }
    }
    *ow = W;
    *oh = H;
    return dst;
}

static unsigned lk_rd16(const unsigned char *p, int big) { return big ? (p[0] << 8 | p[1]) : (p[1] << 8 | p[0]); }
static unsigned long lk_rd32(const unsigned char *p, int big) {
    return big ? ((unsigned long)p[0] << 24 | (unsigned long)p[1] << 16 | (unsigned long)p[2] << 8 | p[3])
               : ((unsigned long)p[3] << 24 | (unsigned long)p[2] << 16 | (unsigned long)p[1] << 8 | p[0]);
}

int lk_jpeg_exif_orientation(const unsigned char *d, size_t n) {
    if (n < 4 || d[0] != 0xFF || d[1] != 0xD8) return 1;
    size_t i = 2;
    while (i + 4 <= n) {
        if (d[i] != 0xFF) return 1;
        unsigned marker = d[i + 1];
        if (marker == 0xFF) { i++; continue; }
        if (marker == 0xDA || marker == 0xD9) return 1; /* start of scan / end: no EXIF before */
        size_t len = (size_t)d[i + 2] << 8 | d[i + 3];
        if (len < 2 || i + 2 + len > n) return 1;
        const unsigned char *seg = d + i + 4;
        size_t segLen = len - 2;
        if (marker == 0xE1 && segLen >= 14 && memcmp(seg, "Exif\0\0", 6) == 0) {
            const unsigned char *t = seg + 6;
            size_t tn = segLen - 6;
            int big;
            if (t[0] == 'I' && t[1] == 'I') big = 0;
            else if (t[0] == 'M' && t[1] == 'M') big = 1;
            else return 1;
            unsigned long ifd = lk_rd32(t + 4, big);
            if (ifd + 2 > tn) return 1;
            unsigned entries = lk_rd16(t + ifd, big);
            for (unsigned e = 0; e < entries; e++) {
                size_t at = ifd + 2 + (size_t)e * 12;
                if (at + 12 > tn) return 1;
                if (lk_rd16(t + at, big) == 0x0112) {
                    unsigned v = lk_rd16(t + at + 8, big);
                    return v >= 1 && v <= 8 ? (int)v : 1;
                }
            }
            return 1;
        }
        i += 2 + len;
    }
    return 1;
}
