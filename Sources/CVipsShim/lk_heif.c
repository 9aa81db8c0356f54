/* Stored HEIF/AVIF thumbnails through libheif, not libvips' heifload. A phone photo's HEVC has no
 * shrink-on-load, so its stored thumbnail (when big enough) is what makes HEIC indexing affordable,
 * and then the thumbnail's decode is the photo's main cost. Debian's libvips 8.14 heifload decodes a
 * thumbnail three times per photo (once while building the loader, twice while the pipeline reads
 * it: measured with a heif_decode_image counter), so the thumbnail is decoded here once, with
 * libheif's default transformations (irot/imir/clap, as heifload applies them), into memory. */
#include "lk_heif.h"

#include <libheif/heif.h>
#include <math.h>
#include <string.h>

static int lk_heif_usable(long long tw, long long th, long long W, long long H, int shortSide) {
    double aspect = (double)W / (double)H, thumbAspect = th > 0 ? (double)tw / (double)th : 0;
    return tw > 0 && th > 0 && tw * th < W * H && (tw < th ? tw : th) >= shortSide && (tw > th) == (W > H) &&
           fabs(thumbAspect / aspect - 1.0) <= 0.01;
}

VipsImage *lk_heif_decode_thumbnail(const char *path, const void *data, size_t length, long long W, long long H,
                                    int shortSide) {
    if (W <= 0 || H <= 0) return NULL;
    VipsImage *result = NULL;
    struct heif_image_handle *primary = NULL, *best = NULL;
    struct heif_image *image = NULL;
    struct heif_context *context = heif_context_alloc();
    if (context == NULL) return NULL;
    struct heif_error error = path != NULL ? heif_context_read_from_file(context, path, NULL)
                                           : heif_context_read_from_memory_without_copy(context, data, length, NULL);
    if (error.code != heif_error_Ok) goto done;
    if (heif_context_get_primary_image_handle(context, &primary).code != heif_error_Ok) goto done;
    int count = heif_image_handle_get_number_of_thumbnails(primary);
    if (count <= 0) goto done;
    heif_item_id ids[16];
    count = heif_image_handle_get_list_of_thumbnail_IDs(primary, ids, count < 16 ? count : 16);
    long long bestArea = 0;
    for (int i = 0; i < count; i++) {
        struct heif_image_handle *candidate = NULL;
        if (heif_image_handle_get_thumbnail(primary, ids[i], &candidate).code != heif_error_Ok) continue;
        long long tw = heif_image_handle_get_width(candidate), th = heif_image_handle_get_height(candidate);
        if (lk_heif_usable(tw, th, W, H, shortSide) && tw * th > bestArea) {
            if (best != NULL) heif_image_handle_release(best);
            best = candidate;
            bestArea = tw * th;
        } else {
            heif_image_handle_release(candidate);
        }
    }
    if (best == NULL) goto done;
    int alpha = heif_image_handle_has_alpha_channel(best);
    error = heif_decode_image(best, &image, heif_colorspace_RGB,
                              alpha ? heif_chroma_interleaved_RGBA : heif_chroma_interleaved_RGB, NULL);
    if (error.code != heif_error_Ok || image == NULL) goto done;
    int width = heif_image_get_width(image, heif_channel_interleaved);
    int height = heif_image_get_height(image, heif_channel_interleaved);
    int stride = 0;
    const uint8_t *plane = heif_image_get_plane_readonly(image, heif_channel_interleaved, &stride);
    int bands = alpha ? 4 : 3;
    /* Checked again after the decode: the transformations may have turned the picture. */
    if (plane == NULL || !lk_heif_usable(width, height, W, H, shortSide) || stride < width * bands) goto done;
    size_t rowBytes = (size_t)width * bands;
    unsigned char *pixels = g_malloc(rowBytes * (size_t)height);
    for (int y = 0; y < height; y++) memcpy(pixels + (size_t)y * rowBytes, plane + (size_t)y * stride, rowBytes);
    result = vips_image_new_from_memory_copy(pixels, rowBytes * (size_t)height, width, height, bands, VIPS_FORMAT_UCHAR);
    g_free(pixels);
    if (result != NULL) {
        result->Type = VIPS_INTERPRETATION_sRGB;
    } else {
        vips_error_clear();
    }
done:
    if (image != NULL) heif_image_release(image);
    if (best != NULL) heif_image_handle_release(best);
    if (primary != NULL) heif_image_handle_release(primary);
    heif_context_free(context);
    return result;
}
