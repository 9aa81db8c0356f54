/* Writes a HEIC the way a phone does: the photo plus a stored thumbnail that was downscaled with a
 * proper filter. libheif's own thumbnails (heif-enc -t, pillow-heif thumbnails=[...]) are scaled
 * nearest-neighbour, which aliases; an iPhone's 320x240 thumbnail does not. Used by
 * scripts/bench_formats.py to measure whether such a thumbnail can stand in for the full decode.
 *
 * Build: cc -O2 scripts/heic_with_thumbnail.c -o out/heic_with_thumbnail $(pkg-config --cflags --libs libheif)
 * Run:   heic_with_thumbnail PHOTO.rgb W H THUMB.rgb TW TH QUALITY THUMB_QUALITY OUT.heic
 *        (.rgb: raw interleaved 8-bit RGB, row after row) */
#include <libheif/heif.h>
#include <stdio.h>
#include <stdlib.h>

static struct heif_image *read_rgb(const char *path, int width, int height) {
    struct heif_image *image = NULL;
    if (heif_image_create(width, height, heif_colorspace_RGB, heif_chroma_interleaved_RGB, &image).code != heif_error_Ok)
        return NULL;
    if (heif_image_add_plane(image, heif_channel_interleaved, width, height, 8).code != heif_error_Ok) goto fail;
    int stride = 0;
    uint8_t *plane = heif_image_get_plane(image, heif_channel_interleaved, &stride);
    FILE *file = fopen(path, "rb");
    if (plane == NULL || file == NULL) goto fail;
    for (int y = 0; y < height; y++) {
        if (fread(plane + (size_t)y * stride, 3, width, file) != (size_t)width) {
            fclose(file);
            goto fail;
        }
    }
    fclose(file);
    return image;
fail:
    heif_image_release(image);
    return NULL;
}

static int check(struct heif_error error, const char *what) {
    if (error.code == heif_error_Ok) return 0;
    fprintf(stderr, "heic_with_thumbnail: %s: %s\n", what, error.message);
    return 1;
}

/* Encodes photo + thumbnail into OUT. `swapped` passes the two handles to
 * heif_context_assign_thumbnail the other way round: Debian's libheif 1.15 writes the `thmb`
 * reference reversed (the photo then reads back as a thumbnail of the thumbnail). */
static int write_file(struct heif_image *photo, struct heif_image *thumb, int quality, int thumbQuality, int swapped,
                      const char *out) {
    struct heif_context *context = heif_context_alloc();
    struct heif_encoder *encoder = NULL;
    struct heif_image_handle *photoHandle = NULL, *thumbHandle = NULL;
    int failed = check(heif_context_get_encoder_for_format(context, heif_compression_HEVC, &encoder), "HEVC encoder");
    if (!failed) {
        heif_encoder_set_parameter_string(encoder, "preset", "fast");
        heif_encoder_set_lossy_quality(encoder, quality);
        failed = check(heif_context_encode_image(context, photo, encoder, NULL, &photoHandle), "encode photo");
    }
    if (!failed) {
        heif_encoder_set_lossy_quality(encoder, thumbQuality);
        failed = check(heif_context_encode_image(context, thumb, encoder, NULL, &thumbHandle), "encode thumbnail");
    }
    if (!failed)
        failed = check(swapped ? heif_context_assign_thumbnail(context, thumbHandle, photoHandle)
                               : heif_context_assign_thumbnail(context, photoHandle, thumbHandle),
                       "assign thumbnail");
    if (!failed) failed = check(heif_context_set_primary_image(context, photoHandle), "primary");
    if (!failed) failed = check(heif_context_write_to_file(context, out), "write");
    if (thumbHandle != NULL) heif_image_handle_release(thumbHandle);
    if (photoHandle != NULL) heif_image_handle_release(photoHandle);
    if (encoder != NULL) heif_encoder_release(encoder);
    heif_context_free(context);
    return failed;
}

/* Whether OUT reads back as the photo (primary, full size) with one thumbnail of the thumbnail's size. */
static int reads_back(const char *out, int width, int height, int thumbWidth, int thumbHeight) {
    struct heif_context *context = heif_context_alloc();
    struct heif_image_handle *primary = NULL, *thumb = NULL;
    int ok = heif_context_read_from_file(context, out, NULL).code == heif_error_Ok &&
             heif_context_get_primary_image_handle(context, &primary).code == heif_error_Ok &&
             heif_image_handle_get_width(primary) == width && heif_image_handle_get_height(primary) == height &&
             heif_image_handle_get_number_of_thumbnails(primary) == 1;
    if (ok) {
        heif_item_id id = 0;
        ok = heif_image_handle_get_list_of_thumbnail_IDs(primary, &id, 1) == 1 &&
             heif_image_handle_get_thumbnail(primary, id, &thumb).code == heif_error_Ok &&
             heif_image_handle_get_width(thumb) == thumbWidth && heif_image_handle_get_height(thumb) == thumbHeight;
    }
    if (thumb != NULL) heif_image_handle_release(thumb);
    if (primary != NULL) heif_image_handle_release(primary);
    heif_context_free(context);
    return ok;
}

int main(int argc, char **argv) {
    if (argc != 10) {
        fprintf(stderr, "usage: %s PHOTO.rgb W H THUMB.rgb TW TH QUALITY THUMB_QUALITY OUT.heic\n", argv[0]);
        return 2;
    }
    int width = atoi(argv[2]), height = atoi(argv[3]), thumbWidth = atoi(argv[5]), thumbHeight = atoi(argv[6]);
    struct heif_image *photo = read_rgb(argv[1], width, height);
    struct heif_image *thumb = read_rgb(argv[4], thumbWidth, thumbHeight);
    if (photo == NULL || thumb == NULL) {
        fprintf(stderr, "heic_with_thumbnail: cannot read %s or %s\n", argv[1], argv[4]);
        return 1;
    }
    int status = 1;
    for (int swapped = 0; swapped <= 1 && status != 0; swapped++) {
        if (write_file(photo, thumb, atoi(argv[7]), atoi(argv[8]), swapped, argv[9])) break;
        if (reads_back(argv[9], width, height, thumbWidth, thumbHeight)) status = 0;
    }
    if (status != 0) fprintf(stderr, "heic_with_thumbnail: %s does not read back as photo + thumbnail\n", argv[9]);
    heif_image_release(thumb);
    heif_image_release(photo);
    return status;
}
