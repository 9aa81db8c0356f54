#!/usr/bin/env python3
"""Generate the small decode test fixtures in Tests/EngineTests/Fixtures/decode/ (Pillow + numpy).

Deterministic: solid colours per format (so a format mix-up shows), an EXIF orientation-6 JPEG
with coloured quadrants, grayscale / CMYK / 16-bit / RGBA / animated-GIF / 16x16 cases, a PNG
named .jpg, and broken inputs (zero bytes, truncated JPEG, garbage, text named .jpg, a 12000x12000
PNG "bomb" of a few KB, a BMP header claiming 20000x20000). Run: python3 scripts/make_decode_fixtures.py
"""
import io
import os
import struct
import zlib

import numpy as np
from PIL import Image, ImageOps

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "Tests", "EngineTests", "Fixtures", "decode")


def path(name):
    return os.path.join(OUT, name)


def solid(color, size=(48, 32), mode="RGB"):
    return Image.new(mode, size, color)


def png_chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def raw_png(width, height, bit_depth, color_type, rows):
    """A PNG written by hand (for 16-bit RGB and the bomb): rows is an iterable of row bytes."""
    comp = zlib.compressobj(9)
    body = b"".join(comp.compress(b"\x00" + r) for r in rows) + comp.flush()
    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, color_type, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", body) + png_chunk(b"IEND", b"")


def main():
    os.makedirs(OUT, exist_ok=True)
    # one solid colour per format
    solid((220, 30, 30)).save(path("red.jpg"), quality=95)
    solid((30, 200, 40)).save(path("green.png"))
    solid((30, 40, 220)).convert("P", palette=Image.Palette.ADAPTIVE).save(path("blue.gif"))
    solid((230, 210, 20)).save(path("yellow.webp"), lossless=True)
    solid((200, 30, 200)).save(path("magenta.bmp"))
    solid((20, 200, 210)).save(path("cyan.tiff"))

    # EXIF orientation 6 (display = stored rotated 90 degrees clockwise). Stored 120x80 with
    # quadrants TL red, TR green, BL blue, BR white -> displayed 80x120 with
    # TL blue, TR red, BL white, BR green.
    q = np.zeros((80, 120, 3), np.uint8)
    q[:40, :60] = (255, 0, 0)
    q[:40, 60:] = (0, 255, 0)
    q[40:, :60] = (0, 0, 255)
    q[40:, 60:] = (255, 255, 255)
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(q).save(path("orient6.jpg"), quality=95, exif=exif.tobytes())
    with Image.open(path("orient6.jpg")) as im:
        shown = np.asarray(ImageOps.exif_transpose(im).convert("RGB"))
    assert shown.shape == (120, 80, 3)
    assert shown[10, 10, 2] > 200 and shown[10, 70, 0] > 200 and shown[110, 10].min() > 200 and shown[110, 70, 1] > 200

    # grayscale, CMYK (pure C+... -> red), 16-bit RGB, 16-bit grey, RGBA, animated GIF, tiny
    solid(90, mode="L").save(path("gray.jpg"), quality=95)
    solid((0, 255, 255, 0), mode="CMYK").save(path("cmyk.jpg"), quality=95)
    w, h = 40, 30
    row16 = struct.pack(">HHH", 65535, 32896, 0) * w  # -> (255, 128, 0)
    open(path("rgb16.png"), "wb").write(raw_png(w, h, 16, 2, [row16] * h))
    open(path("gray16.png"), "wb").write(raw_png(w, h, 16, 0, [struct.pack(">H", 40000) * w] * h))  # -> 156
    rgba = np.zeros((32, 48, 4), np.uint8)
    rgba[:, 24:] = (0, 0, 255, 255)  # right half opaque blue, left half fully transparent black
    Image.fromarray(rgba, "RGBA").save(path("rgba.png"))
    frames = [solid(c).convert("P", palette=Image.Palette.ADAPTIVE) for c in ((250, 0, 0), (0, 250, 0))]
    frames[0].save(path("anim.gif"), save_all=True, append_images=frames[1:], duration=100, loop=0)
    solid((255, 128, 0), size=(16, 16)).save(path("tiny16.png"))
    # a PNG whose name says JPEG
    solid((30, 200, 40)).save(path("lying_png.jpg"), format="PNG")

    # a smooth horizontal gradient photo large enough for shrink-on-load (2048x1536)
    x = np.linspace(0, 255, 2048, dtype=np.float32)[None, :].repeat(1536, 0)
    grad = np.stack([x, np.full_like(x, 60), 255 - x], -1).astype(np.uint8)
    Image.fromarray(grad).save(path("large_gradient.jpg"), quality=60)

    # broken inputs
    open(path("zero.jpg"), "wb").close()
    rng = np.random.default_rng(7)
    noise = rng.integers(0, 256, (128, 128, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(noise).save(buf, format="JPEG", quality=80)
    data = buf.getvalue()
    open(path("truncated.jpg"), "wb").write(data[: len(data) // 2])
    garbage = bytearray(rng.integers(0, 256, 2048, dtype=np.uint8).tobytes())
    garbage[:4] = b"\x00\x01\x02\x03"  # never a known magic number
    open(path("garbage.jpg"), "wb").write(bytes(garbage))
    open(path("text.jpg"), "w").write("This is a plain text file, not a photo.\n")
    # 12000x12000 = 144 MP single-colour 1-bit PNG: a few KB on disk
    n = 12000
    open(path("bomb.png"), "wb").write(raw_png(n, n, 1, 0, (bytes(n // 8) for _ in range(n))))
    # a BMP header claiming 20000x20000 (24-bit) with no pixel data
    hdr = b"BM" + struct.pack("<IHHI", 54, 0, 0, 54) + struct.pack("<IiiHHIIiiII", 40, 20000, 20000, 1, 24, 0, 0, 2835, 2835, 0, 0)
    open(path("bomb.bmp"), "wb").write(hdr)

    total = sum(os.path.getsize(path(f)) for f in os.listdir(OUT))
    print(f"wrote {len(os.listdir(OUT))} fixtures to {os.path.normpath(OUT)}, {total} bytes")


if __name__ == "__main__":
    main()
