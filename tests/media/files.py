"""Small real files of every supported type, built in memory."""

import io
import struct
import zlib

from PIL import Image


def png(width: int = 64, height: int = 48, color: tuple[int, int, int] = (10, 120, 200)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (width, height), color).save(buf, format="PNG")
    return buf.getvalue()


def jpeg(width: int = 640, height: int = 480, orientation: int | None = None) -> bytes:
    buf = io.BytesIO()
    image = Image.new("RGB", (width, height), (200, 30, 60))
    if orientation is None:
        image.save(buf, format="JPEG", quality=80)
    else:
        exif = Image.Exif()
        exif[0x0112] = orientation
        image.save(buf, format="JPEG", quality=80, exif=exif.tobytes())
    return buf.getvalue()


def gif(width: int = 30, height: int = 20) -> bytes:
    buf = io.BytesIO()
    frames = [Image.new("P", (width, height), i) for i in (1, 2)]
    frames[0].save(buf, format="GIF", save_all=True, append_images=frames[1:])
    return buf.getvalue()


def webp(width: int = 100, height: int = 50) -> bytes:
    buf = io.BytesIO()
    Image.new("RGBA", (width, height), (0, 0, 255, 128)).save(buf, format="WEBP")
    return buf.getvalue()


def pdf() -> bytes:
    return b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"


def box(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I4s", 8 + len(payload), kind) + payload


def full_box(kind: bytes, payload: bytes, version: int = 0) -> bytes:
    return box(kind, bytes([version, 0, 0, 0]) + payload)


def ftyp(major: bytes, *compatible: bytes) -> bytes:
    return box(b"ftyp", major + b"\0\0\0\0" + b"".join(compatible))


def heic(width: int = 4032, height: int = 3024, major: bytes = b"heic") -> bytes:
    """A HEIF container with a grid's ispe and a smaller tile's ispe (no real image data)."""
    ispe_big = full_box(b"ispe", struct.pack(">II", width, height))
    ispe_tile = full_box(b"ispe", struct.pack(">II", 512, 512))
    meta = full_box(
        b"meta",
        full_box(b"hdlr", b"\0" * 4 + b"pict" + b"\0" * 13)
        + box(b"iprp", box(b"ipco", ispe_tile + ispe_big)),
    )
    return ftyp(major, b"mif1", b"heic") + meta + box(b"mdat", b"\0" * 64)


def mp4(width: int = 1920, height: int = 1080, seconds: float = 12.5, moov_last: bool = False) -> bytes:
    timescale = 1000
    mvhd = full_box(b"mvhd", struct.pack(">IIII", 0, 0, timescale, int(seconds * timescale)) + b"\0" * 80)
    # tkhd v0: creation, modification, track id, reserved, duration (5×4), reserved 8, layer/alt 4,
    # volume/reserved 4, matrix 36, width/height 8 (16.16).
    tkhd = full_box(
        b"tkhd",
        b"\0" * 20
        + b"\0" * 8
        + b"\0" * 4
        + b"\0" * 4
        + b"\0" * 36
        + struct.pack(">II", width << 16, height << 16),
    )
    audio_tkhd = full_box(b"tkhd", b"\0" * 80)
    moov = box(b"moov", mvhd + box(b"trak", audio_tkhd) + box(b"trak", tkhd))
    mdat = box(b"mdat", b"\0" * 256)
    head = ftyp(b"isom", b"isom", b"mp41")
    return head + (mdat + moov if moov_last else moov + mdat)


def png_with_header(width: int, height: int, ihdr_length: int = 13) -> bytes:
    """A small PNG whose IHDR claims `width`×`height` (CRC kept valid) and declares `ihdr_length`
    bytes: a header Pillow reads without decoding any pixel."""
    data = bytearray(png(8, 8))
    ihdr = bytearray(data[16:29])  # after the signature (8), IHDR's length (4) and type (4)
    ihdr[0:8] = struct.pack(">II", width, height)
    data[16:29] = ihdr
    data[29:33] = struct.pack(">I", zlib.crc32(b"IHDR" + bytes(ihdr)))
    data[8:12] = struct.pack(">I", ihdr_length)
    return bytes(data)


def gif_with_empty_frame() -> bytes:
    """A GIF whose image descriptor is 0 pixels wide: Pillow raises ValueError on it."""
    data = bytearray(gif(30, 20))
    descriptor = data.index(b"\x2c")  # image separator
    data[descriptor + 5 : descriptor + 7] = struct.pack("<H", 0)
    return bytes(data)
