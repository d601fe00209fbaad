"""Image helpers shared by the generators and the media library: WebP encoding, resizing, fonts."""

from __future__ import annotations

import functools
import io
from importlib import resources

from PIL import Image, ImageFont

__all__ = ["WEBP_METHOD", "encode_webp", "load_font", "resize_to"]

# libwebp ``method`` (0 = fastest .. 6 = smallest), measured at 2048x2048, quality 82, one core (Pillow 13;
# ``python bench/render_vs_encode.py --methods`` re-runs the first column):
#
#   method   offline render (flat shapes + text)   photo (upscaled JPEG)
#     0        36 ms   81 KiB                         75 ms  381 KiB
#     1        47 ms   67 KiB                         83 ms  371 KiB
#     2        62 ms   56 KiB                        109 ms  292 KiB
#     3       155 ms   51 KiB                        263 ms  278 KiB
#     4       154 ms   51 KiB                        265 ms  279 KiB
#     5       166 ms   51 KiB                        291 ms  283 KiB
#     6       190 ms   50 KiB                        469 ms  278 KiB
#
# 0 -> 2 removes ~25-30% of the bytes for little time. 3+ switch on rate-distortion optimisation: another
# ~5-9% fewer bytes and, at equal quality setting, slightly higher PSNR (+0.3 dB on the photo), for ~2.5x the
# time of method 2; 3 and 4 cost the same, 5 and 6 cost more for nothing measurable. We take 4 (libwebp's
# default, the smallest output before the slow exhaustive searches): an image is encoded once and then
# stored and served many times, and ~0.1 s per 4-megapixel image is small next to a provider's generation
# time. Callers that are CPU-bound (bulk thumbnails) can pass ``method=2``.
WEBP_METHOD = 4

_FONT_PACKAGE = "postengine.kit"
_FONT_FILES = {True: "DejaVuSans-Bold.ttf", False: "DejaVuSans.ttf"}


def encode_webp(image: Image.Image, *, quality: int = 82, method: int = WEBP_METHOD) -> bytes:
    """Encode ``image`` as lossy WebP and return the file bytes (``RIFF....WEBP``).

    ``method`` trades encoding time for size (see ``WEBP_METHOD``); the default suits stored images.

    Images in modes WebP cannot store (``P``, ``L``, ``CMYK``, ...) are converted to RGB, or RGBA
    when they carry transparency. Output is deterministic for identical pixels and ``quality``.
    """
    if not 0 <= quality <= 100:
        raise ValueError(f"quality must be in 0..100, got {quality}")
    if not 0 <= method <= 6:
        raise ValueError(f"method must be in 0..6, got {method}")
    if image.mode not in ("RGB", "RGBA"):
        has_alpha = image.mode in ("LA", "PA") or "transparency" in image.info
        image = image.convert("RGBA" if has_alpha else "RGB")
    buf = io.BytesIO()
    image.save(buf, format="WEBP", quality=quality, method=method, lossless=False, exact=False)
    return buf.getvalue()


def resize_to(image: Image.Image, width: int, height: int) -> Image.Image:
    """Return ``image`` resized to exactly ``width`` x ``height`` with a high-quality LANCZOS filter.

    When the aspect ratio differs, the largest centred region with the target aspect is cropped first,
    so nothing is stretched. The crop is computed in source pixels and never exceeds the source.

    This helper does not refuse to upscale: if the (cropped) source is smaller than the target it is
    still scaled up to the requested size, which loses sharpness. Callers that must not enlarge should
    compare ``image.size`` with the target first and decide (reject, or keep the smaller size).
    """
    if width <= 0 or height <= 0:
        raise ValueError(f"target size must be positive, got {width}x{height}")
    src_w, src_h = image.size
    if src_w <= 0 or src_h <= 0:
        raise ValueError("source image is empty")
    if (src_w, src_h) == (width, height):
        return image.copy()

    # Largest centred crop with the target aspect: compare width/height vs src_w/src_h with integers.
    if src_w * height > width * src_h:
        # Source is wider than the target: keep full height, trim the sides.
        crop_w = max(1, min(src_w, round(src_h * width / height)))
        left = (src_w - crop_w) // 2
        box = (left, 0, left + crop_w, src_h)
    elif src_w * height < width * src_h:
        # Source is taller than the target: keep full width, trim top and bottom.
        crop_h = max(1, min(src_h, round(src_w * height / width)))
        top = (src_h - crop_h) // 2
        box = (0, top, src_w, top + crop_h)
    else:
        box = (0, 0, src_w, src_h)

    # Resizing with ``box`` crops and scales in one pass (no intermediate copy of the crop).
    return image.resize((width, height), Image.Resampling.LANCZOS, box=box)


@functools.lru_cache(maxsize=2)
def _font_bytes(bold: bool) -> bytes:
    # ``fonts`` is a plain data directory inside the package (shipped via package-data), read through
    # importlib.resources so it also works from a wheel or zip import.
    return resources.files(_FONT_PACKAGE).joinpath("fonts").joinpath(_FONT_FILES[bold]).read_bytes()


@functools.lru_cache(maxsize=128)
def load_font(size: int, *, bold: bool = True) -> ImageFont.FreeTypeFont:
    """Load the shipped DejaVu Sans (Bold by default) at ``size`` pixels. Cached per (size, bold).

    The returned font object is shared between callers: treat it as read-only.
    """
    if size <= 0:
        raise ValueError(f"font size must be positive, got {size}")
    return ImageFont.truetype(io.BytesIO(_font_bytes(bold)), size=size)
