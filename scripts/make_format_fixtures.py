#!/usr/bin/env python3
"""Generate the HEIC / AVIF / JPEG XL and EXIF test fixtures in Tests/EngineTests/Fixtures/decode/.

Needs (generation only; the tests read the committed files and need no Python):
  pip install pillow pillow-heif   # HEIC through libheif + x265 (pillow-heif wheels), AVIF through
                                   # Pillow's own AVIF plugin (libavif, Pillow >= 11.3)
  apt-get install libjxl-tools     # cjxl, for JPEG XL
Run: python3 scripts/make_format_fixtures.py   (then check the sizes it prints: tens of KB each)

The source photo is Tests/EngineTests/Fixtures/cat.jpg (public domain, see LICENSES.md):
  cat.heic, cat.avif             the photo as HEIC (HEVC) and AVIF, lossy
  cat.jxl                        the photo as a bare JPEG XL codestream (lossy, from the pixels)
  cat_container.jxl              cat.jpg losslessly recompressed by cjxl: the JPEG XL container
  cat_irot.heic                  the photo stored turned 90 degrees anticlockwise, with an `irot`
                                 property (and EXIF Orientation 6, as phones write both) that
                                 turns it upright again: it must decode upright and not twice turned
  cat_thumb.heic                 the photo at 480x320 as a 3x2-tile grid (as phones write it) with
                                 a stored 400x267 thumbnail (>= the 224-px short side the
                                 network's input needs): decoded from the thumbnail
  cat_thumb_small.heic           the same with a 240x160 thumbnail (under 224: full decode)
  cat_thumb_phone.heic           the same with a 336x224 thumbnail: a short side of 224 (the network's
                                 input, as a phone's 320x240 has 240) is enough: decoded from it
  cat_thumb_damaged.heic         cat_thumb.heic with the thumbnail's coded data replaced by noise: a
                                 damaged thumbnail must not lose the photo
  heic_named.jpg                 a green HEIC under a .jpg name; jpeg_named.heic: a yellow JPEG
  multi.heic                     three solid images (red, blue primary, green): the primary is blue
  rgba.heic, rgba.avif           left half transparent, right half opaque blue
  p3_green.heic                  sRGB green stored as Display P3 numbers with a P3 ICC profile
  bomb.heic                      a small HEIC whose `ispe` says 12000x12000 (over the 100 MP limit)
  truncated.{heic,avif,jxl}      the first half of cat.{heic,avif,jxl}; truncated_container.jxl
                                 the first half of cat_container.jxl
  corrupt.{heic,avif,jxl}        a valid signature (ftyp box / JXL signature) followed by noise
EXIF (capture date with offset, make, model, GPS) on small solid images, one per container:
  exif.jpg (fast libjpeg-turbo path), exif.heic, exif.avif, exif.png, exif.webp, exif.tiff
  exif_orient_only.heic          EXIF with nothing but an Orientation: every fact must be absent
"""
import io
import os
import struct
import subprocess
import tempfile

import numpy as np
import pillow_heif
from PIL import Image, ImageCms, TiffImagePlugin

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
OUT = os.path.join(ROOT, "Tests", "EngineTests", "Fixtures", "decode")
CAT = os.path.join(ROOT, "Tests", "EngineTests", "Fixtures", "cat.jpg")

# The EXIF facts the tests expect (see DecodeTests / FormatTests).
DATE = "2023:06:14 09:41:05"
OFFSET = "+02:00"
MAKE, MODEL = "Apple", "iPhone 13"
# Sydney Opera House (south, east) for the JPEG; the Statue of Liberty (north, west) elsewhere.
SYDNEY = ("S", (33, 51, 31.0), "E", (151, 12, 54.8))
LIBERTY = ("N", (40, 41, 21.4), "W", (74, 2, 40.2))


def path(name):
    return os.path.join(OUT, name)


def exif_bytes(gps, orientation=None):
    exif = Image.Exif()
    exif[0x010F] = MAKE
    exif[0x0110] = MODEL
    if orientation is not None:
        exif[0x0112] = orientation
    ifd = exif.get_ifd(0x8769)  # Exif IFD
    ifd[0x9003] = DATE  # DateTimeOriginal
    ifd[0x9011] = OFFSET  # OffsetTimeOriginal
    lat_ref, lat, lon_ref, lon = gps
    g = exif.get_ifd(0x8825)  # GPS IFD
    g[0x0000] = b"\x02\x03\x00\x00"  # GPSVersionID
    g[0x0001] = lat_ref
    g[0x0002] = tuple(TiffImagePlugin.IFDRational(v) for v in lat)
    g[0x0003] = lon_ref
    g[0x0004] = tuple(TiffImagePlugin.IFDRational(v) for v in lon)
    return exif.tobytes()


def heif_boxes(data, start, end):
    """(type, offset, header size, size) of the ISO-BMFF boxes in data[start:end]."""
    while start + 8 <= end:
        size, kind = struct.unpack(">I4s", data[start : start + 8])
        header = 8
        if size == 1:
            size, header = struct.unpack(">Q", data[start + 8 : start + 16])[0], 16
        elif size == 0:
            size = end - start
        yield kind, start, header, size
        start += size


def heif_items(data):
    """Item id -> [(file offset, length)] from `iloc`, and the ids of thumbnail items (`thmb`)."""
    extents, thumbs = {}, []
    meta = next((o, h, n) for k, o, h, n in heif_boxes(data, 0, len(data)) if k == b"meta")
    for kind, o, h, n in heif_boxes(data, meta[0] + meta[1] + 4, meta[0] + meta[2]):
        body = data[o + h : o + n]
        pos = 4

        def read(k):
            nonlocal pos
            pos += k
            return int.from_bytes(body[pos - k : pos], "big")

        if kind == b"iloc":
            version = body[0]
            sizes = read(2)
            off_size, len_size, base_size = sizes >> 12, (sizes >> 8) & 15, (sizes >> 4) & 15
            index_size = sizes & 15 if version in (1, 2) else 0
            for _ in range(read(2 if version < 2 else 4)):
                item = read(2 if version < 2 else 4)
                method = read(2) & 15 if version in (1, 2) else 0
                read(2)  # data reference index
                base = read(base_size)
                spans = []
                for _ in range(read(2)):
                    read(index_size)
                    spans.append((base + read(off_size), read(len_size)))
                if method == 0:  # in the file (1 = in the meta box's idat)
                    extents[item] = spans
        elif kind == b"iref":
            while pos < len(body):
                size, ref = struct.unpack(">I4s", body[pos : pos + 8])
                if ref == b"thmb":
                    thumbs.append(int.from_bytes(body[pos + 8 : pos + 10], "big"))
                pos += size
    return extents, thumbs


def display_p3_profile():
    """A minimal ICC v2 RGB matrix/TRC profile with Display P3's primaries (D50-adapted
    colorants as in Apple's profile) and a 2.2 gamma: what phones tag their HEICs with, made
    here because neither Pillow nor libvips ships a P3 profile."""
    def s15(v):
        return struct.pack(">i", round(v * 65536))

    def xyz(x, y, z):
        return b"XYZ " + bytes(4) + s15(x) + s15(y) + s15(z)

    text = b"Display P3 (Lookalike test)"
    desc = b"desc" + bytes(4) + struct.pack(">I", len(text) + 1) + text + b"\0" + bytes(8) + bytes(3) + bytes(67)
    curve = b"curv" + bytes(4) + struct.pack(">IH", 1, round(2.2 * 256)) + bytes(2)
    tags = [(b"desc", desc), (b"wtpt", xyz(0.9642, 1.0, 0.8249)), (b"rXYZ", xyz(0.5151, 0.2412, -0.0011)),
            (b"gXYZ", xyz(0.2920, 0.6922, 0.0419)), (b"bXYZ", xyz(0.1571, 0.0666, 0.7841)),
            (b"rTRC", curve), (b"gTRC", curve), (b"bTRC", curve), (b"cprt", b"text" + bytes(4) + b"CC0\0")]
    offset = 128 + 4 + 12 * len(tags)
    table, data = b"", b""
    for sig, body in tags:
        body += bytes(-len(body) % 4)
        table += sig + struct.pack(">II", offset + len(data), len(body))
        data += body
    size = offset + len(data)
    header = (struct.pack(">I", size) + bytes(4) + struct.pack(">I", 0x02100000) + b"mntrRGB XYZ " + bytes(12)
              + b"acsp" + bytes(24) + struct.pack(">I", 0) + s15(0.9642) + s15(1.0) + s15(0.8249) + bytes(48))
    assert len(header) == 128
    return header + struct.pack(">I", len(tags)) + table + data


def heic(image, name, **kwargs):
    kwargs.setdefault("quality", 60)
    # x265's fastest preset: the fixtures are tiny, the default preset only costs time.
    kwargs.setdefault("enc_params", {"preset": "fast"})
    image.save(path(name), format="HEIF", **kwargs)


def avif(image, name, **kwargs):
    kwargs.setdefault("quality", 60)
    image.save(path(name), format="AVIF", **kwargs)


def half(src, dst):
    data = open(path(src), "rb").read()
    open(path(dst), "wb").write(data[: len(data) // 2])


def corrupt(dst, signature):
    rng = np.random.default_rng(11)
    noise = rng.integers(0, 256, 4096, dtype=np.uint8).tobytes()
    open(path(dst), "wb").write(signature + noise)


def main():
    os.makedirs(OUT, exist_ok=True)
    pillow_heif.register_heif_opener()
    cat = Image.open(CAT).convert("RGB")
    assert cat.size == (451, 300)

    heic(cat, "cat.heic")
    avif(cat, "cat.avif")
    with tempfile.TemporaryDirectory() as tmp:
        png = os.path.join(tmp, "cat.png")
        cat.save(png)
        subprocess.run(["cjxl", png, path("cat.jxl"), "-d", "1.5", "--quiet"], check=True)
        subprocess.run(["cjxl", CAT, path("cat_container.jxl"), "--quiet"], check=True)
    assert open(path("cat.jxl"), "rb").read(2) == b"\xff\x0a", "expected a bare codestream"
    assert open(path("cat_container.jxl"), "rb").read(8)[4:] == b"JXL ", "expected the container"

    # Stored turned anticlockwise; Orientation 6 = "rotate 90 clockwise to show". pillow-heif
    # turns the EXIF orientation into an irot property and keeps the EXIF tag, as iPhones do.
    sideways = cat.transpose(Image.Transpose.ROTATE_90)
    exif = Image.Exif()
    exif[0x0112] = 6
    heic(sideways, "cat_irot.heic", exif=exif.tobytes())
    irot = open(path("cat_irot.heic"), "rb").read()
    assert b"irot" in irot, "no irot box written"
    with Image.open(path("cat_irot.heic")) as im:  # pillow-heif applies irot: upright again
        assert im.size == (451, 300), im.size

    big = cat.resize((480, 320), Image.Resampling.LANCZOS)
    heic(big, "cat_thumb.heic", thumbnails=[400], tile_size=160)
    heic(big, "cat_thumb_small.heic", thumbnails=[240], tile_size=160)
    heic(big, "cat_thumb_phone.heic", thumbnails=[336], tile_size=160)
    for name, box in (("cat_thumb.heic", 400), ("cat_thumb_small.heic", 240), ("cat_thumb_phone.heic", 336)):
        info = pillow_heif.open_heif(path(name)).info
        assert info.get("thumbnails") == [box], (name, info.get("thumbnails"))
    # The thumbnail's coded data replaced by noise (same length): libheif fails on it, the photo
    # itself is whole.
    data = bytearray(open(path("cat_thumb.heic"), "rb").read())
    extents, thumbs = heif_items(bytes(data))
    assert len(thumbs) == 1 and len(extents[thumbs[0]]) == 1
    offset, length = extents[thumbs[0]][0]
    data[offset + 4 : offset + length] = np.random.default_rng(5).integers(0, 256, length - 4, dtype=np.uint8).tobytes()
    open(path("cat_thumb_damaged.heic"), "wb").write(bytes(data))
    damaged = pillow_heif.open_heif(path("cat_thumb_damaged.heic"))
    damaged[0].load()  # the primary image decodes
    try:
        damaged[0].get_thumbnail(0).load()
        raise AssertionError("the thumbnail of cat_thumb_damaged.heic still decodes")
    except (ValueError, EOFError, RuntimeError, OSError):
        pass

    heic(Image.new("RGB", (48, 32), (30, 200, 40)), "heic_named.jpg", quality=90)
    Image.new("RGB", (48, 32), (230, 210, 20)).save(path("jpeg_named.heic"), format="JPEG", quality=95)

    solids = [Image.new("RGB", (48, 32), c) for c in ((220, 30, 30), (30, 40, 220), (30, 200, 40))]
    heic(solids[0], "multi.heic", save_all=True, append_images=solids[1:], primary_index=1)
    assert pillow_heif.open_heif(path("multi.heic")).primary_index == 1

    rgba = np.zeros((32, 48, 4), np.uint8)
    rgba[:, 24:] = (0, 0, 255, 255)
    heic(Image.fromarray(rgba, "RGBA"), "rgba.heic", quality=90)
    avif(Image.fromarray(rgba, "RGBA"), "rgba.avif", quality=90)

    # sRGB green as Display P3 numbers (about 117, 251, 63), tagged with the P3 profile: decoded
    # with the profile honoured it is green again; read as sRGB it would be a dull olive.
    p3 = display_p3_profile()
    to_p3 = ImageCms.buildTransform(ImageCms.createProfile("sRGB"), ImageCms.ImageCmsProfile(io.BytesIO(p3)),
                                    "RGB", "RGB")
    green_p3 = ImageCms.applyTransform(Image.new("RGB", (48, 32), (0, 255, 0)), to_p3)
    print("sRGB (0, 255, 0) in Display P3:", green_p3.getpixel((0, 0)))
    heic(green_p3, "p3_green.heic", quality=95, icc_profile=p3)

    # A 64x64 HEIC whose image-size property claims 12000x12000: refused by the header check.
    buf = io.BytesIO()
    Image.new("RGB", (64, 64), (128, 128, 128)).save(buf, format="HEIF", quality=30)
    data = bytearray(buf.getvalue())
    at = data.find(b"ispe")
    assert at > 0 and int.from_bytes(data[at + 8 : at + 12], "big") == 64
    data[at + 8 : at + 16] = (12000).to_bytes(4, "big") + (12000).to_bytes(4, "big")
    open(path("bomb.heic"), "wb").write(bytes(data))

    for ext in ("heic", "avif", "jxl"):
        half(f"cat.{ext}", f"truncated.{ext}")
    half("cat_container.jxl", "truncated_container.jxl")
    corrupt("corrupt.heic", open(path("cat.heic"), "rb").read(32))
    corrupt("corrupt.avif", open(path("cat.avif"), "rb").read(32))
    corrupt("corrupt.jxl", b"\xff\x0a")

    # EXIF facts, one small image per container.
    plain = Image.new("RGB", (64, 48), (90, 140, 200))
    plain.save(path("exif.jpg"), quality=90, exif=exif_bytes(SYDNEY))
    heic(plain, "exif.heic", exif=exif_bytes(LIBERTY))
    avif(plain, "exif.avif", exif=exif_bytes(LIBERTY))
    plain.save(path("exif.png"), exif=exif_bytes(LIBERTY))
    plain.save(path("exif.webp"), lossless=True, exif=exif_bytes(LIBERTY))
    plain.save(path("exif.tiff"), exif=exif_bytes(LIBERTY))
    only = Image.Exif()
    only[0x0112] = 1
    heic(plain, "exif_orient_only.heic", exif=only.tobytes())

    names = sorted(f for f in os.listdir(OUT) if f.split(".")[-1] in ("heic", "avif", "jxl") or
                   f.startswith(("exif", "heic_named")))
    for f in names:
        print(f"{os.path.getsize(path(f)):8d}  {f}")
    print(f"{sum(os.path.getsize(path(f)) for f in names)} bytes in {len(names)} files")


if __name__ == "__main__":
    main()
