"""What a file really is: its type sniffed from the bytes, its dimensions, its thumbnail.

Everything here is synchronous and CPU-bound (Pillow) or pure parsing: callers run it in a worker
thread (`anyio.to_thread.run_sync(..., limiter=ctx.cpu)`), never on the event loop.

Magic numbers: JPEG `FF D8 FF`; PNG's 8-byte signature; `GIF87a`/`GIF89a`; WebP `RIFF....WEBP`;
PDF `%PDF-`; HEIF/HEIC and MP4 are ISO base media files (ISO/IEC 14496-12) told apart by the brands
of their leading `ftyp` box (HEIF brands from ISO/IEC 23008-12).
"""

import io
import struct
from dataclasses import dataclass

from PIL import Image, ImageOps, UnidentifiedImageError

from postengine.kit.image import encode_webp

SNIFF_BYTES = 64  # enough for every signature and an `ftyp` box's first brands
THUMBNAIL_LONG_SIDE = 320
# No social image needs more. Checked from the header, before decoding. (Pillow's own guard, at
# `Image.MAX_IMAGE_PIXELS` ≈ 89.5 M it only warns, and raises DecompressionBombError from twice that.)
MAX_PIXELS = 100_000_000
_TOO_MANY_PIXELS = f"at most {MAX_PIXELS:,} pixels are accepted"

_HEIC_BRANDS = {b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"hevm", b"hevs"}
_HEIF_BRANDS = {b"mif1", b"msf1", b"heif"}
_MP4_BRANDS = {
    b"isom", b"iso2", b"iso3", b"iso4", b"iso5", b"iso6", b"iso7", b"iso8", b"iso9",
    b"mp41", b"mp42", b"mp71", b"avc1", b"dash", b"M4V ", b"M4VP", b"MSNV", b"XAVC", b"f4v ", b"mmp4",
}  # fmt: skip
_PILLOW_FORMATS = {"image/jpeg": "JPEG", "image/png": "PNG", "image/gif": "GIF", "image/webp": "WEBP"}


class InvalidFile(ValueError):
    """The bytes are of the sniffed type's signature but cannot be read as that type."""


def sniff(head: bytes) -> str | None:
    """The content type the first bytes of a file show, among the supported ones; None otherwise."""
    if head.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "image/gif"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    if head.startswith(b"%PDF-"):
        return "application/pdf"
    if head[4:8] == b"ftyp":
        return _sniff_ftyp(head)
    return None


def _sniff_ftyp(head: bytes) -> str | None:
    size = int.from_bytes(head[0:4], "big")
    major = head[8:12]
    end = min(len(head), size) if size >= 16 else len(head)
    compatible = {head[i : i + 4] for i in range(16, end - 3, 4)}
    brands = {major, *compatible}
    if major in _HEIC_BRANDS or (major in _HEIF_BRANDS and brands & _HEIC_BRANDS):
        return "image/heic"
    if major in _HEIF_BRANDS:
        return "image/heif"
    if major in _MP4_BRANDS:
        return "video/mp4"
    return None


def same_format(declared: str, sniffed: str) -> bool:
    """HEIC is HEIF with HEVC inside, and tools label it either way: those two are interchangeable."""
    heif = {"image/heic", "image/heif"}
    return declared == sniffed or (declared in heif and sniffed in heif)


@dataclass(frozen=True, slots=True)
class ImageFacts:
    width: int | None
    height: int | None
    thumbnail: bytes | None  # WebP; None where Pillow cannot decode the format (HEIF)


def inspect_image(data: bytes, content_type: str) -> ImageFacts:
    """Dimensions (as displayed, after the EXIF orientation) and a WebP thumbnail.

    HEIF/HEIC: Pillow has no decoder for them, so the dimensions come from the `ispe` property box
    and there is no thumbnail."""
    if content_type in ("image/heic", "image/heif"):
        size = heif_dimensions(data)
        if size is None:
            raise InvalidFile("The file is not a readable HEIF image (no image size in it).")
        return ImageFacts(size[0], size[1], None)
    expected = _PILLOW_FORMATS[content_type]
    # No `warnings.catch_warnings()` to turn Pillow's DecompressionBombWarning into an error: it swaps
    # the process-wide filter list and is not thread-safe, and this runs in worker threads.
    try:
        with Image.open(io.BytesIO(data), formats=[expected]) as image:
            if image.width * image.height > MAX_PIXELS:
                raise InvalidFile(f"The image is {image.width}×{image.height} pixels; {_TOO_MANY_PIXELS}.")
            image.load()
            oriented = ImageOps.exif_transpose(image)
            return ImageFacts(oriented.width, oriented.height, make_thumbnail(oriented))
    except InvalidFile:  # a ValueError itself: not to be caught below
        raise
    except Image.DecompressionBombError:
        raise InvalidFile(f"The image has too many pixels; {_TOO_MANY_PIXELS}.") from None
    except (
        UnidentifiedImageError,
        OSError,
        SyntaxError,  # Pillow's parsers raise it on some malformed headers
        ValueError,  # and this on others ("Truncated IHDR chunk", "tile cannot extend outside image")
    ) as exc:
        raise InvalidFile(f"The file is not a readable {expected} image ({type(exc).__name__}).") from None


def make_thumbnail(image: Image.Image, long_side: int = THUMBNAIL_LONG_SIDE) -> bytes:
    """A WebP of at most `long_side` pixels on its long side (never enlarged); the first frame of an
    animation. Used for uploads and for generated images alike."""
    frame = image.copy() if image.mode in ("RGB", "RGBA") else image.convert(_mode_for(image))
    frame.thumbnail((long_side, long_side), Image.Resampling.LANCZOS, reducing_gap=2.0)
    return encode_webp(frame, quality=80, method=2)


def _mode_for(image: Image.Image) -> str:
    has_alpha = image.mode in ("RGBA", "LA", "PA", "La", "RGBa") or "transparency" in image.info
    return "RGBA" if has_alpha else "RGB"


# ---------------------------------------------------------------- ISO base media files (HEIF, MP4)


def iter_boxes(data: bytes, start: int = 0, end: int | None = None) -> list[tuple[bytes, int, int]]:
    """`(type, payload_start, payload_end)` of each box in `data[start:end]`; stops at a malformed box."""
    end = len(data) if end is None else end
    boxes = []
    offset = start
    while offset + 8 <= end:
        size, kind = struct.unpack_from(">I4s", data, offset)
        header = 8
        if size == 1:
            if offset + 16 > end:
                break
            size = struct.unpack_from(">Q", data, offset + 8)[0]
            header = 16
        elif size == 0:
            size = end - offset
        if size < header or offset + size > end:
            break
        boxes.append((kind, offset + header, offset + size))
        offset += size
    return boxes


def _child(data: bytes, start: int, end: int, kind: bytes) -> tuple[int, int] | None:
    for found, payload_start, payload_end in iter_boxes(data, start, end):
        if found == kind:
            return payload_start, payload_end
    return None


def heif_dimensions(data: bytes) -> tuple[int, int] | None:
    """The largest `ispe` (image spatial extents) in `meta/iprp/ipco`: the primary image of a grid
    is larger than its tiles and its thumbnail."""
    meta = _child(data, 0, len(data), b"meta")
    if meta is None:
        return None
    iprp = _child(data, meta[0] + 4, meta[1], b"iprp")  # `meta` is a full box: version + flags first
    ipco = _child(data, *iprp, b"ipco") if iprp else None
    if ipco is None:
        return None
    best: tuple[int, int] | None = None
    for kind, start, end in iter_boxes(data, *ipco):
        if kind == b"ispe" and end - start >= 12:
            width, height = struct.unpack_from(">II", data, start + 4)
            if width and height and (best is None or width * height > best[0] * best[1]):
                best = (width, height)
    return best


@dataclass(frozen=True, slots=True)
class VideoFacts:
    width: int | None
    height: int | None
    duration: float | None  # seconds


def movie_facts(moov: bytes) -> VideoFacts:
    """Duration from `mvhd`, size from the first track header (`tkhd`) with a non-zero size.

    `moov` is the payload of the `moov` box."""
    duration: float | None = None
    mvhd = _child(moov, 0, len(moov), b"mvhd")
    if mvhd is not None:
        start = mvhd[0]
        version = moov[start] if start < len(moov) else 0
        if version == 1 and mvhd[1] - start >= 32:
            timescale, length = struct.unpack_from(">IQ", moov, start + 20)
        elif mvhd[1] - start >= 20:
            timescale, length = struct.unpack_from(">II", moov, start + 12)
        else:
            timescale, length = 0, 0
        if timescale:
            duration = round(length / timescale, 3)
    for kind, start, end in iter_boxes(moov):
        if kind != b"trak":
            continue
        tkhd = _child(moov, start, end, b"tkhd")
        if tkhd is None or tkhd[1] - tkhd[0] < 84:
            continue
        # Width and height are the last 8 bytes of tkhd, 16.16 fixed point, in either version.
        width, height = struct.unpack_from(">II", moov, tkhd[1] - 8)
        if width >> 16 and height >> 16:
            return VideoFacts(width >> 16, height >> 16, duration)
    return VideoFacts(None, None, duration)
