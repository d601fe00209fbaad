"""Offline renderer: exact sizes, determinism, prompt-driven palette, fitted and legible quoted text."""

import hashlib
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import cast

import pytest
from PIL import Image, ImageChops, ImageStat

from postengine.generation import render
from postengine.generation.render import compose, extract_quoted_text, layout_text, render_offline
from postengine.kit.image import encode_webp, load_font

MODELS = {"nano-banana-pro": 2048, "gemini-3-pro": 1536, "ideogram-v2": 1024, "flux-schnell": 1024}
RATIOS = ["1:1", "16:9", "9:16", "4:3", "3:4", "4:5", "5:4"]
POSTER = 'a poster that says "LISBON", warm golden hour, tram and tiles'


def size_for(long_side: int, ratio: str) -> tuple[int, int]:
    a, b = (int(x) for x in ratio.split(":"))
    short = round(long_side * min(a, b) / max(a, b) / 8) * 8
    return (long_side, short) if a >= b else (short, long_side)


def test_size_helper_matches_the_spec_examples() -> None:
    assert size_for(2048, "16:9") == (2048, 1152)
    assert size_for(1024, "4:5") == (816, 1024)


def _luma(image: Image.Image) -> Image.Image:
    return image.convert("L")


def _changed(a: Image.Image, b: Image.Image, threshold: int = 40) -> Image.Image:
    """Mask (L, 0/255) of pixels whose luma differs by more than ``threshold``."""
    return ImageChops.difference(_luma(a), _luma(b)).point(lambda v: 255 if v > threshold else 0)


def _span(image: Image.Image) -> float:
    """Luma range (max - min) of ``image``."""
    lo, hi = cast(tuple[float, float], _luma(image).getextrema())
    return hi - lo


def _fraction(mask: Image.Image) -> float:
    return mask.histogram()[255] / (mask.width * mask.height)


def _without(monkeypatch: pytest.MonkeyPatch, name: str, fn: Callable[[], Image.Image]) -> Image.Image:
    """Run ``fn`` with ``<name>`` replaced by a no-op (same seed, same everything else).

    Patched in ``render.compose``, the module ``render_offline`` looks its helpers up in.
    """
    with monkeypatch.context() as m:
        m.setattr(compose, name, lambda *args, **kwargs: None)
        return fn()


# ------------------------------------------------------------------------------------------------- sizes


@pytest.mark.parametrize("model", list(MODELS))
@pytest.mark.parametrize("ratio", RATIOS)
def test_exact_size_for_every_model_and_ratio(model: str, ratio: str) -> None:
    width, height = size_for(MODELS[model], ratio)
    image = render_offline(model, POSTER, width, height)
    assert image.size == (width, height)
    assert image.mode == "RGB"


@pytest.mark.parametrize("size", [(1, 1), (7, 13), (64, 64), (333, 777), (1001, 99), (40, 2000)])
def test_exact_size_for_odd_sizes(size: tuple[int, int]) -> None:
    image = render_offline("flux-schnell", 'a "very long headline that will need wrapping" on teal', *size)
    assert image.size == size
    assert image.mode == "RGB"


@pytest.mark.parametrize("size", [(0, 10), (10, 0), (-5, 5)])
def test_rejects_empty_sizes(size: tuple[int, int]) -> None:
    with pytest.raises(ValueError):
        render_offline("flux-schnell", "x", *size)


def test_unknown_model_still_renders() -> None:
    assert render_offline("some-future-model", POSTER, 320, 240).size == (320, 240)


# ------------------------------------------------------------------------------------------ determinism


@pytest.mark.parametrize(("model", "size"), [("nano-banana-pro", (1152, 2048)), ("ideogram-v2", (1024, 576))])
def test_same_inputs_same_pixels_and_same_webp(model: str, size: tuple[int, int]) -> None:
    first = render_offline(model, POSTER, *size)
    second = render_offline(model, POSTER, *size)
    assert first.tobytes() == second.tobytes()
    assert encode_webp(first) == encode_webp(second)


def test_deterministic_across_processes() -> None:
    # A fresh interpreter with a different hash seed must draw the same bytes (no use of hash()).
    prompt = "minimal teal poster, \"HELLO\" and 'WORLD', mountains"
    here = hashlib.sha256(render_offline("gemini-3-pro", prompt, 240, 320).tobytes()).hexdigest()
    code = (
        "import hashlib, sys\n"
        "from postengine.generation.render import render_offline\n"
        "img = render_offline('gemini-3-pro', sys.argv[1], 240, 320)\n"
        "print(hashlib.sha256(img.tobytes()).hexdigest())\n"
    )
    src = str(Path(render.__file__).resolve().parents[3])  # .../src/postengine/generation/render/__init__.py
    env = {**os.environ, "PYTHONHASHSEED": "12345", "PYTHONPATH": src}
    out = subprocess.run(
        [sys.executable, "-c", code, prompt], capture_output=True, text=True, env=env, check=True, timeout=60
    )
    assert out.stdout.strip() == here


@pytest.mark.parametrize(
    ("a", "b"),
    [
        (("flux-schnell", "a red poster"), ("flux-schnell", "a blue poster")),
        (("flux-schnell", "a cozy cafe"), ("flux-schnell", "a cozy cafe!")),
        (("flux-schnell", POSTER), ("ideogram-v2", POSTER)),
    ],
)
def test_different_inputs_give_different_images(a: tuple[str, str], b: tuple[str, str]) -> None:
    img_a = render_offline(a[0], a[1], 512, 512)
    img_b = render_offline(b[0], b[1], 512, 512)
    assert img_a.tobytes() != img_b.tobytes()
    # Not a one-pixel difference: the composition changes.
    assert _fraction(_changed(img_a, img_b, threshold=10)) > 0.05


def test_many_prompts_give_many_distinct_images() -> None:
    digests = {
        hashlib.sha256(render_offline("flux-schnell", f"poster number {i}", 96, 96).tobytes()).digest()
        for i in range(40)
    }
    assert len(digests) == 40


# ------------------------------------------------------------------------------------------------ palette


def _mean(image: Image.Image) -> list[float]:
    return ImageStat.Stat(image).mean


def test_colour_words_drive_the_palette() -> None:
    red = _mean(render_offline("flux-schnell", "a red poster", 256, 256))
    teal = _mean(render_offline("flux-schnell", "a teal poster", 256, 256))
    navy = _mean(render_offline("flux-schnell", "a navy poster", 256, 256))
    assert red[0] > red[2] + 30  # red: R well above B
    assert teal[1] > teal[0] + 30 and teal[2] > teal[0] + 30  # teal: G and B above R
    assert navy[2] > navy[0] + 30  # navy: B above R


def test_lighting_words_drive_brightness() -> None:
    def brightness(prompt: str) -> float:
        return sum(ImageStat.Stat(_luma(render_offline("gemini-3-pro", prompt, 256, 256))).mean)

    for colour in ("orange", "teal", "pastel", "coffee"):
        assert (
            brightness(f"{colour} scene at night, dark") < brightness(f"{colour} scene, bright morning") - 40
        )


def test_no_colour_word_still_gives_a_varied_palette() -> None:
    means = [_mean(render_offline("flux-schnell", f"an abstract composition {i}", 64, 64)) for i in range(8)]
    spread = max(m[0] for m in means) - min(m[0] for m in means)
    assert spread > 40  # the seed picks different palettes, not one grey for everything


# ---------------------------------------------------------------------------------------------------- text


@pytest.mark.parametrize(
    ("prompt", "expected"),
    [
        ('a poster that says "LISBON"', ["LISBON"]),
        ("a poster that says “Olá Lisboa” in blue", ["Olá Lisboa"]),
        ("a mug with 'Good Morning' on it", ["Good Morning"]),
        ("it's a cat's toy, don't panic", []),
        ("a sign reading 'Bob's Café' at night", ["Bob's Café"]),
        ('"ONE" then ‘TWO’ then "THREE" then "FOUR"', ["ONE", "TWO", "THREE"]),
        ('an empty "" quote and "  spaced   out  "', ["spaced out"]),
        ("no quotes at all", []),
    ],
)
def test_extract_quoted_text(prompt: str, expected: list[str]) -> None:
    assert extract_quoted_text(prompt) == expected


@pytest.mark.parametrize(
    "size", [(1024, 1024), (2048, 1152), (1152, 2048), (816, 1024), (1536, 864), (576, 1024)]
)
def test_quoted_text_is_drawn_fitted_and_legible(
    monkeypatch: pytest.MonkeyPatch, size: tuple[int, int]
) -> None:
    width, height = size
    with_text = render_offline("flux-schnell", POSTER, width, height)
    without = _without(
        monkeypatch, "_draw_text", lambda: render_offline("flux-schnell", POSTER, width, height)
    )
    mask = _changed(with_text, without)
    bbox = mask.getbbox()
    assert bbox is not None, "the quoted text changed nothing"
    left, top, right, bottom = bbox
    # Fitted: the block spans most of the width (~80%) but stays inside the frame and under ~40% height.
    assert 0.6 * width <= right - left <= 0.85 * width, bbox
    assert bottom - top <= 0.45 * height, bbox
    assert left > 0.05 * width and right < 0.95 * width, bbox
    # Drawn in the central band, with real coverage (glyphs, not a hairline).
    assert top > 0.03 * height and bottom < 0.97 * height, bbox
    assert _fraction(mask.crop(bbox)) > 0.2
    # Legible: glyph fill and outline contrast strongly with each other inside the text block.
    assert _span(with_text.crop(bbox)) > 180


def test_quoted_text_changes_the_centre_compared_to_the_same_prompt_unquoted() -> None:
    # Different prompts give different seeds, so compare how much *structure* the centre has: the quoted
    # version must have high-contrast glyph edges there.
    quoted = render_offline("ideogram-v2", 'teal poster that says "LISBON"', 1024, 1024)
    unquoted = render_offline("ideogram-v2", "teal poster that says LISBON", 1024, 1024)
    centre = (256, 384, 768, 640)
    assert _span(quoted.crop(centre)) > 180
    assert _span(quoted.crop(centre)) > _span(unquoted.crop(centre))


def _text_bbox(
    monkeypatch: pytest.MonkeyPatch, model: str, prompt: str, size: tuple[int, int]
) -> tuple[int, ...]:
    """Bounding box of what the quoted text (and its plate, if any) adds to the picture."""
    image = render_offline(model, prompt, *size)
    plain = _without(monkeypatch, "_draw_text", lambda: render_offline(model, prompt, *size))
    bbox = _changed(image, plain).getbbox()
    assert bbox is not None, "the quoted text changed nothing"
    return bbox


@pytest.mark.parametrize("size", [(1024, 1024), (576, 1024), (1024, 576)])
def test_ideogram_sets_a_bigger_text_block_than_flux(
    monkeypatch: pytest.MonkeyPatch, size: tuple[int, int]
) -> None:
    def area(bbox: tuple[int, ...]) -> int:
        return (bbox[2] - bbox[0]) * (bbox[3] - bbox[1])

    ideogram = _text_bbox(monkeypatch, "ideogram-v2", POSTER, size)
    flux = _text_bbox(monkeypatch, "flux-schnell", POSTER, size)
    assert area(ideogram) > area(flux)
    # Bigger, but still a block inside the frame, not a full-bleed slab.
    assert ideogram[0] > 0.03 * size[0] and ideogram[2] < 0.97 * size[0], ideogram
    assert ideogram[3] - ideogram[1] <= 0.5 * size[1], ideogram


def test_multiple_quotes_are_stacked_on_lines(monkeypatch: pytest.MonkeyPatch) -> None:
    one = _text_bbox(monkeypatch, "gemini-3-pro", 'flyer "OPEN"', (800, 800))
    three = _text_bbox(monkeypatch, "gemini-3-pro", 'flyer "OPEN" "DAILY" "9 TO 5"', (800, 800))
    assert (three[3] - three[1]) > 1.5 * (one[3] - one[1])


def test_offline_label_is_drawn_in_the_corner(monkeypatch: pytest.MonkeyPatch) -> None:
    image = render_offline("flux-schnell", "a calm sea", 1024, 576)
    plain = _without(
        monkeypatch, "_draw_label", lambda: render_offline("flux-schnell", "a calm sea", 1024, 576)
    )
    bbox = _changed(image, plain, threshold=20).getbbox()
    assert bbox is not None
    left, top, right, bottom = bbox
    assert left > 1024 * 0.5 and top > 576 * 0.8 and right > 1024 * 0.9  # bottom-right corner
    assert (bottom - top) < 576 * 0.1  # small


# -------------------------------------------------------------------------------------------- layout_text


@pytest.mark.parametrize(
    ("text", "box"),
    [
        ("LISBON", (1638, 460)),
        ("LISBON", (460, 800)),
        ("SUMMER SALE\n50% off everything", (460, 400)),
        ("a fairly long sentence that certainly has to be wrapped onto several lines to fit", (700, 400)),
        ("Supercalifragilisticexpialidocious" * 3, (300, 200)),
    ],
)
def test_layout_text_fits_the_box(text: str, box: tuple[int, int]) -> None:
    layout = layout_text(text, *box)
    assert layout.width <= box[0]
    assert layout.height <= box[1]
    font = load_font(layout.size)
    for line in layout.lines:
        assert font.getlength(line) <= box[0]


def test_layout_text_is_the_largest_size_that_fits() -> None:
    layout = layout_text("LISBON", 1638, 460)
    # A single short word in a wide box is limited by the width: it fills most of it.
    assert layout.lines == ("LISBON",)
    assert layout.width >= 0.9 * 1638
    bigger = load_font(layout.size + 1).getlength("LISBON") + 2 * max(1, round((layout.size + 1) / 22))
    assert bigger > 1638 or layout.height + 3 > 460


def test_layout_text_wraps_long_text_on_narrow_boxes() -> None:
    layout = layout_text("Grand opening this Saturday", 460, 820)
    assert len(layout.lines) >= 2
    assert " ".join(layout.lines) == "Grand opening this Saturday"


def test_layout_text_keeps_quotes_on_separate_lines() -> None:
    layout = layout_text("ONE\nTWO", 2000, 1000)
    assert layout.lines == ("ONE", "TWO")


def test_layout_text_truncates_what_cannot_fit() -> None:
    layout = layout_text("word " * 400, 120, 40)
    assert layout.height <= 40 or len(layout.lines) == 1
    assert layout.lines[-1].endswith("…") or len(layout.lines) == 1
