"""kit.image: WebP encoding, aspect-correct resizing, shipped fonts."""

import io
from typing import cast

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image, ImageDraw, ImageFont, ImageStat

from postengine.kit.image import WEBP_METHOD, encode_webp, load_font, resize_to


def _busy_image(width: int = 256, height: int = 192) -> Image.Image:
    """Gradient plus noise plus shapes: something an encoder has to work on."""
    gradient = Image.linear_gradient("L").resize((width, height))
    noise = Image.effect_noise((width, height), 60)
    image = Image.merge("RGB", (gradient, noise, gradient.transpose(Image.Transpose.FLIP_LEFT_RIGHT)))
    draw = ImageDraw.Draw(image)
    draw.ellipse((20, 20, width // 2, height // 2), fill=(250, 200, 30))
    draw.rectangle((width // 2, height // 2, width - 10, height - 10), fill=(20, 60, 200))
    return image


def _band_ranges(image: Image.Image) -> list[tuple[float, float]]:
    """(min, max) of each band."""
    return [cast(tuple[float, float], band.getextrema()) for band in image.split()]


def _decode(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


# --------------------------------------------------------------------------------------------- encode_webp


def test_encode_webp_is_a_riff_webp_file_that_decodes_to_the_same_size() -> None:
    image = _busy_image(300, 170)
    data = encode_webp(image)
    assert data[:4] == b"RIFF"
    assert data[8:12] == b"WEBP"
    assert int.from_bytes(data[4:8], "little") == len(data) - 8  # RIFF chunk size covers the whole file
    decoded = _decode(data)
    assert decoded.format == "WEBP"
    assert decoded.size == (300, 170)
    assert decoded.mode == "RGB"


def test_encode_webp_is_lossy_but_close() -> None:
    image = _busy_image()
    decoded = _decode(encode_webp(image)).convert("RGB")
    # Lossy: not bit-exact on noisy content, but the mean colour survives.
    assert decoded.tobytes() != image.tobytes()
    for a, b in zip(ImageStat.Stat(image).mean, ImageStat.Stat(decoded).mean, strict=True):
        assert abs(a - b) < 4


def test_encode_webp_is_deterministic() -> None:
    image = _busy_image()
    assert encode_webp(image) == encode_webp(image.copy())


def test_quality_trades_size() -> None:
    image = _busy_image()
    assert len(encode_webp(image, quality=30)) < len(encode_webp(image, quality=95))


def test_default_method_and_override() -> None:
    image = _busy_image()
    assert encode_webp(image) == encode_webp(image, method=WEBP_METHOD)
    fast = encode_webp(image, method=0)
    assert fast[8:12] == b"WEBP"
    assert _decode(fast).size == image.size


@pytest.mark.parametrize("mode", ["L", "P", "CMYK", "RGBA", "LA", "I;16"])
def test_encode_webp_accepts_other_modes(mode: str) -> None:
    image = _busy_image(64, 48).convert(mode)
    decoded = _decode(encode_webp(image))
    assert decoded.size == (64, 48)
    assert decoded.mode in ("RGB", "RGBA")  # fully opaque alpha may be dropped by the encoder


def test_encode_webp_keeps_transparency() -> None:
    image = Image.new("RGBA", (64, 64), (255, 0, 0, 0))
    ImageDraw.Draw(image).rectangle((16, 16, 47, 47), fill=(0, 0, 255, 255))
    decoded = _decode(encode_webp(image))
    assert decoded.mode == "RGBA"
    assert decoded.getpixel((2, 2))[3] == 0  # type: ignore[index]
    assert decoded.getpixel((32, 32))[3] == 255  # type: ignore[index]


@pytest.mark.parametrize("kwargs", [{"quality": -1}, {"quality": 101}, {"method": 7}, {"method": -1}])
def test_encode_webp_rejects_bad_settings(kwargs: dict[str, int]) -> None:
    with pytest.raises(ValueError):
        encode_webp(_busy_image(16, 16), **kwargs)


# ----------------------------------------------------------------------------------------------- resize_to


@pytest.mark.parametrize(
    ("src", "dst"),
    [
        ((2048, 2048), (1024, 1024)),
        ((2048, 2048), (1024, 576)),
        ((2048, 2048), (576, 1024)),
        ((2048, 1152), (816, 1024)),
        ((1536, 864), (1024, 768)),
        ((1000, 1000), (1000, 1000)),
        ((640, 480), (1280, 720)),  # smaller source: still fitted (upscaled), the caller decides
        ((1, 1), (8, 8)),
        ((1001, 333), (17, 999)),
    ],
)
def test_resize_to_gives_exact_size(src: tuple[int, int], dst: tuple[int, int]) -> None:
    out = resize_to(Image.new("RGB", src, (10, 20, 30)), *dst)
    assert out.size == dst
    assert out.mode == "RGB"


def test_resize_to_same_size_returns_a_copy() -> None:
    image = _busy_image(120, 80)
    out = resize_to(image, 120, 80)
    assert out is not image
    assert out.tobytes() == image.tobytes()


def _three_bands(width: int, height: int, *, vertical: bool) -> Image.Image:
    """Red | blue | green in thirds along the long axis (columns if ``vertical`` is False)."""
    image = Image.new("RGB", (width, height), (0, 0, 255))
    draw = ImageDraw.Draw(image)
    if vertical:
        draw.rectangle((0, 0, width - 1, height // 3 - 1), fill=(255, 0, 0))
        draw.rectangle((0, height - height // 3, width - 1, height - 1), fill=(0, 255, 0))
    else:
        draw.rectangle((0, 0, width // 3 - 1, height - 1), fill=(255, 0, 0))
        draw.rectangle((width - width // 3, 0, width - 1, height - 1), fill=(0, 255, 0))
    return image


def test_resize_to_centre_crops_a_wide_source() -> None:
    # 900x300 with red|blue|green thirds -> 1:1 keeps exactly the blue middle 300x300.
    out = resize_to(_three_bands(900, 300, vertical=False), 100, 100)
    assert out.size == (100, 100)
    r, g, b = _band_ranges(out)
    assert r[1] < 30 and g[1] < 30 and b[0] > 225, (r, g, b)


def test_resize_to_centre_crops_a_tall_source() -> None:
    out = resize_to(_three_bands(300, 900, vertical=True), 60, 60)
    r, g, b = _band_ranges(out)
    assert r[1] < 30 and g[1] < 30 and b[0] > 225, (r, g, b)


def test_resize_to_keeps_proportions_instead_of_stretching() -> None:
    # A circle in a square source stays a circle (not an ellipse) in a 16:9 target.
    src = Image.new("L", (400, 400), 0)
    ImageDraw.Draw(src).ellipse((150, 150, 249, 249), fill=255)
    out = resize_to(src, 320, 180)
    left, top, right, bottom = out.point(lambda v: 255 if v > 128 else 0).getbbox() or (0, 0, 0, 0)
    assert abs((right - left) - (bottom - top)) <= 2


@settings(max_examples=60, deadline=None)
@given(
    sw=st.integers(1, 300),
    sh=st.integers(1, 300),
    dw=st.integers(1, 300),
    dh=st.integers(1, 300),
)
def test_resize_to_never_reads_outside_the_source(sw: int, sh: int, dw: int, dh: int) -> None:
    # A uniform source must give a uniform result: a crop box past the edge would pull in black.
    colour = (200, 120, 40)
    out = resize_to(Image.new("RGB", (sw, sh), colour), dw, dh)
    assert out.size == (dw, dh)
    for (lo, hi), c in zip(_band_ranges(out), colour, strict=True):
        assert c - 2 <= lo <= hi <= c + 2


def test_resize_to_rejects_empty_target() -> None:
    with pytest.raises(ValueError):
        resize_to(Image.new("RGB", (10, 10)), 0, 10)


# ----------------------------------------------------------------------------------------------- load_font


def test_load_font_returns_the_shipped_dejavu() -> None:
    bold = load_font(32)
    regular = load_font(32, bold=False)
    assert isinstance(bold, ImageFont.FreeTypeFont)
    assert isinstance(regular, ImageFont.FreeTypeFont)
    assert bold.getname() == ("DejaVu Sans", "Bold")
    assert regular.getname() == ("DejaVu Sans", "Book")
    assert bold.size == 32


def test_load_font_is_cached_and_sized() -> None:
    assert load_font(48) is load_font(48)
    assert load_font(48) is not load_font(48, bold=False)
    assert load_font(96).getlength("LISBON") > 1.9 * load_font(48).getlength("LISBON")


def test_load_font_renders_real_glyphs() -> None:
    # Not Pillow's bitmap fallback font: a big glyph covers many pixels.
    image = Image.new("L", (200, 120), 0)
    ImageDraw.Draw(image).text((10, 10), "Ag", font=load_font(90), fill=255)
    assert sum(image.histogram()[129:]) > 2000


def test_load_font_rejects_nonpositive_size() -> None:
    with pytest.raises(ValueError):
        load_font(0)
