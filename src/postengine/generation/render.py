"""Deterministic offline renderer: layout/typography drafts drawn from the prompt, no network, no model.

``render_offline(model, prompt, width, height)`` always returns the same pixels for the same inputs (in any
process: the seed is a SHA-256 of the inputs, never ``hash()``). It reads the prompt for

* colour words (``teal``, ``coffee``, ``sunset``...) -> palette; lighting/mood words (``night``,
  ``golden hour``, ``minimal``...) -> brightness, saturation, warmth and how busy the composition is;
* a few subject nouns (sun, moon, mountain, city, cup, flower, beach/wave, tree) -> flat silhouettes;
* quoted text (``"..."``, ``“...”``, ``'...'``) -> set in DejaVu Sans Bold, fitted by binary search to
  ~80% of the width and at most ~40% of the height, wrapped, with outline and shadow for legibility.

It is a draft, not a photograph: flat shapes, a corner label "OFFLINE DRAFT" and crop marks say so.

Cost: the background and shapes are composed at a reduced working resolution (long side at most
``_WORK_LONG_SIDE`` and at most half the target's; drawn at twice that and halved with ``reduce()`` for
anti-aliasing) and upscaled once with BILINEAR; only the text is drawn at full resolution so glyphs stay
crisp. Drawing takes about a quarter to a third of the time of the WebP encode of the result
(``bench/render_vs_encode.py``: ~42 ms vs ~155 ms at 2048x2048, ~14 ms vs ~43 ms at 1024x1024).
"""

from __future__ import annotations

import colorsys
import hashlib
import math
import random
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from PIL import Image, ImageDraw, ImageFont, ImageStat

from postengine.kit.image import load_font

__all__ = ["TextLayout", "extract_quoted_text", "layout_text", "render_offline"]

RGB = tuple[int, int, int]
RGBA = tuple[int, int, int, int]

# Background and shapes end up at this long side (at most half the target's) and are upscaled; they are
# drawn at twice that and halved first, for anti-aliasing.
_WORK_LONG_SIDE = 768
# Size of the tiny gradient grid computed in Python before being scaled up (cheap and smooth).
_GRADIENT_CELLS = 40
# Quoted text: at most this many quotes and characters in total (longer text is truncated with "…").
_MAX_QUOTES = 3
_MAX_TEXT_CHARS = 160


def _hex(value: str) -> RGB:
    value = value.lstrip("#")
    return (int(value[0:2], 16), int(value[2:4], 16), int(value[4:6], 16))


def _pal(*values: str) -> tuple[RGB, ...]:
    return tuple(_hex(v) for v in values)


# Colour words -> palette. The first two colours make the background gradient, the rest are accents.
_COLOUR_WORDS: dict[str, tuple[RGB, ...]] = {
    "red": _pal("#9d0b28", "#d62839", "#ffb3ae", "#3d0610", "#f4d35e"),
    "crimson": _pal("#7a0019", "#c1121f", "#ffccd5", "#2b0008", "#fdf0d5"),
    "orange": _pal("#c2410c", "#f97316", "#fed7aa", "#431407", "#0e7490"),
    "gold": _pal("#7c5a10", "#c99a2e", "#fff1c1", "#2e2106", "#f7d774"),
    "golden": _pal("#8a6212", "#d6a537", "#fff3cf", "#33240a", "#f9e29c"),
    "yellow": _pal("#d4a106", "#fde047", "#fffbeb", "#3f3000", "#1d4ed8"),
    "green": _pal("#166534", "#22c55e", "#dcfce7", "#052e16", "#facc15"),
    "mint": _pal("#6fd3b0", "#c8f7e6", "#ffffff", "#1f6f5c", "#ff9fb2"),
    "teal": _pal("#0b5f5b", "#14b8a6", "#ccfbf1", "#042f2e", "#fb923c"),
    "turquoise": _pal("#0e7c86", "#40e0d0", "#e0fffb", "#053b40", "#ffb347"),
    "blue": _pal("#1e3a8a", "#3b82f6", "#dbeafe", "#0b1533", "#fbbf24"),
    "navy": _pal("#0b1d51", "#1f3b8a", "#c9d6ff", "#050d26", "#e9c46a"),
    "sky": _pal("#5fa8e8", "#bfe3ff", "#ffffff", "#1d4f82", "#ffd166"),
    "purple": _pal("#4c1d95", "#8b5cf6", "#ede9fe", "#1e0b3d", "#f472b6"),
    "violet": _pal("#5b21b6", "#a78bfa", "#f5f3ff", "#22094a", "#fde68a"),
    "lavender": _pal("#9d8bd8", "#e4dcff", "#ffffff", "#4b3c86", "#ffc8dd"),
    "pink": _pal("#db2777", "#f9a8d4", "#fdf2f8", "#500724", "#34d399"),
    "magenta": _pal("#a1005f", "#ff2fa0", "#ffd6ec", "#3d0024", "#00e0c6"),
    "pastel": _pal("#f7c6d9", "#c7e3ff", "#fff4c7", "#8b7fb8", "#c9f2dc"),
    "neon": _pal("#12002b", "#3a0ca3", "#ff00a8", "#00f0ff", "#b6ff00"),
    "marble": _pal("#ece9e2", "#cfcac0", "#8f8a80", "#3d3a35", "#b8a27a"),
    "coffee": _pal("#3b2418", "#6f4e37", "#e6ccb2", "#1c110b", "#c8a27a"),
    "brown": _pal("#5c3d2e", "#8d5b3f", "#e8d5c4", "#24160f", "#d9a441"),
    "beige": _pal("#e6d5b8", "#f5ecdc", "#8c7a5b", "#4a3f2c", "#c56b4a"),
    "cream": _pal("#f3e9d2", "#fffaf0", "#a68a64", "#4d4030", "#6b9080"),
    "forest": _pal("#0f3d2e", "#2d6a4f", "#b7e4c7", "#081c15", "#d4a373"),
    "ocean": _pal("#023e8a", "#0096c7", "#caf0f8", "#03045e", "#ffd6a5"),
    "sunset": _pal("#ff6b35", "#9d4edd", "#ffd6a5", "#2b2d42", "#ffbe0b"),
    "autumn": _pal("#9a3412", "#d97706", "#fde68a", "#3b1405", "#65a30d"),
    "winter": _pal("#cfe3f2", "#f4f9fd", "#5b7fa6", "#1f3550", "#a3c9e2"),
    "black": _pal("#0a0a0a", "#262626", "#e5e5e5", "#000000", "#d4af37"),
    "white": _pal("#f5f5f4", "#ffffff", "#a8a29e", "#292524", "#e11d48"),
    "grey": _pal("#4b5563", "#9ca3af", "#f3f4f6", "#111827", "#f59e0b"),
    "gray": _pal("#4b5563", "#9ca3af", "#f3f4f6", "#111827", "#f59e0b"),
    "silver": _pal("#8e9aa6", "#d9dee3", "#ffffff", "#2f3840", "#5c7cfa"),
    "monochrome": _pal("#1f1f1f", "#6b6b6b", "#f0f0f0", "#000000", "#bdbdbd"),
}


@dataclass(frozen=True, slots=True)
class _Mood:
    brightness: float = 1.0  # multiplies HLS lightness
    saturation: float = 1.0  # multiplies HLS saturation
    warmth: float = 0.0  # -1 (blue) .. +1 (amber) tint
    busy: float = 1.0  # multiplies the number of abstract shapes


# Lighting / mood words (multi-word phrases are matched before single words).
_MOOD_WORDS: dict[str, _Mood] = {
    "golden hour": _Mood(1.05, 1.15, 0.8),
    "blue hour": _Mood(0.7, 1.0, -0.7),
    "warm": _Mood(1.0, 1.05, 0.5),
    "cold": _Mood(1.0, 0.85, -0.5),
    "cool": _Mood(1.0, 0.9, -0.35),
    "morning": _Mood(1.12, 0.9, 0.25),
    "sunrise": _Mood(1.05, 1.1, 0.5),
    "night": _Mood(0.42, 0.9, -0.6),
    "midnight": _Mood(0.35, 0.85, -0.7),
    "evening": _Mood(0.75, 1.0, 0.2),
    "moody": _Mood(0.58, 0.75, -0.2, 0.8),
    "noir": _Mood(0.5, 0.2, 0.0, 0.7),
    "cinematic": _Mood(0.8, 1.1, 0.1),
    "dramatic": _Mood(0.65, 1.2, 0.0, 1.2),
    "minimal": _Mood(1.08, 0.6, 0.0, 0.4),
    "minimalist": _Mood(1.08, 0.6, 0.0, 0.4),
    "clean": _Mood(1.1, 0.8, 0.0, 0.6),
    "cozy": _Mood(0.88, 1.0, 0.55, 0.9),
    "cosy": _Mood(0.88, 1.0, 0.55, 0.9),
    "vibrant": _Mood(1.05, 1.45, 0.0, 1.3),
    "bold": _Mood(1.0, 1.3, 0.0, 1.1),
    "playful": _Mood(1.1, 1.3, 0.1, 1.4),
    "dark": _Mood(0.5, 1.0, 0.0),
    "bright": _Mood(1.22, 1.1, 0.0),
    "soft": _Mood(1.12, 0.7, 0.05, 0.8),
    "dreamy": _Mood(1.12, 0.75, 0.0, 0.9),
    "muted": _Mood(0.95, 0.5, 0.0),
    "calm": _Mood(1.05, 0.75, -0.1, 0.6),
    "sunny": _Mood(1.2, 1.15, 0.4),
    "summer": _Mood(1.15, 1.2, 0.3, 1.1),
    "luxury": _Mood(0.7, 0.9, 0.3, 0.7),
    "elegant": _Mood(0.9, 0.8, 0.1, 0.6),
    "retro": _Mood(1.0, 0.85, 0.35),
    "vintage": _Mood(0.95, 0.65, 0.4),
}
_MOOD_PHRASES = sorted(_MOOD_WORDS, key=len, reverse=True)


# Per-model styling: how many abstract shapes, text box (fraction of width, height), extra detail.
@dataclass(frozen=True, slots=True)
class _Style:
    shapes: int
    text_w: float
    text_h: float
    detail: bool
    plate: bool


_STYLES: dict[str, _Style] = {
    "nano-banana-pro": _Style(shapes=7, text_w=0.80, text_h=0.40, detail=True, plate=False),
    "gemini-3-pro": _Style(shapes=5, text_w=0.80, text_h=0.40, detail=False, plate=False),
    "ideogram-v2": _Style(shapes=4, text_w=0.86, text_h=0.48, detail=False, plate=True),
    "flux-schnell": _Style(shapes=3, text_w=0.80, text_h=0.40, detail=False, plate=False),
}
_DEFAULT_STYLE = _Style(shapes=4, text_w=0.80, text_h=0.40, detail=False, plate=False)

# ----------------------------------------------------------------------------------------------- prompt

# "double", “curly double”, ‘curly single’ and 'single' quotes. A straight single quote only opens after
# a non-word character and only closes before one, so apostrophes (it's, don't) are not quotes. Empty
# quotes ("") match too (and are then skipped) so they cannot pair up with the next quote.
_QUOTE_RE = re.compile(
    r"\"(?P<d>[^\"]*)\"|“(?P<c>[^”]*)”|‘(?P<s>[^’]*)’|(?<!\w)'(?P<a>[^\n]*?)'(?!\w)",
)
_WORD_RE = re.compile(r"[a-z]+")


def extract_quoted_text(prompt: str) -> list[str]:
    """Return the texts quoted in ``prompt``, in order, at most three, stripped and non-empty."""
    quotes: list[str] = []
    for match in _QUOTE_RE.finditer(prompt):
        text = next(g for g in match.groups() if g is not None)
        text = " ".join(text.split())
        if text:
            quotes.append(text)
        if len(quotes) == _MAX_QUOTES:
            break
    return quotes


def _unquoted(prompt: str) -> str:
    return _QUOTE_RE.sub(" ", prompt).lower()


# ---------------------------------------------------------------------------------------------- palette


@dataclass(frozen=True, slots=True)
class _Palette:
    bg_a: RGB
    bg_b: RGB
    accents: tuple[RGB, ...]
    light: RGB
    dark: RGB


def _luma(c: Sequence[float]) -> float:
    return 0.299 * c[0] + 0.587 * c[1] + 0.114 * c[2]


def _mix(a: Sequence[float], b: Sequence[float], t: float) -> RGB:
    return (
        round(a[0] + (b[0] - a[0]) * t),
        round(a[1] + (b[1] - a[1]) * t),
        round(a[2] + (b[2] - a[2]) * t),
    )


def _clamp(v: float, lo: float = 0.0, hi: float = 1.0) -> float:
    return lo if v < lo else hi if v > hi else v


def _adjust(c: RGB, mood: _Mood) -> RGB:
    h, lum, s = colorsys.rgb_to_hls(c[0] / 255, c[1] / 255, c[2] / 255)
    lum = _clamp(lum * mood.brightness if mood.brightness <= 1 else lum + (1 - lum) * (mood.brightness - 1))
    s = _clamp(s * mood.saturation)
    r, g, b = colorsys.hls_to_rgb(h, lum, s)
    out = (r * 255, g * 255, b * 255)
    if mood.warmth > 0:
        return _mix(out, (255, 166, 77), 0.22 * min(mood.warmth, 1.5))
    if mood.warmth < 0:
        return _mix(out, (38, 70, 150), 0.22 * min(-mood.warmth, 1.5))
    return (round(out[0]), round(out[1]), round(out[2]))


def _hls(h: float, lum: float, s: float) -> RGB:
    r, g, b = colorsys.hls_to_rgb(h % 1.0, _clamp(lum), _clamp(s))
    return (round(r * 255), round(g * 255), round(b * 255))


def _seed_palette(rng: random.Random) -> tuple[RGB, ...]:
    """A harmonious palette from the seed alone (no colour word in the prompt)."""
    h = rng.random()
    scheme = rng.choice((0.5, 0.42, 0.58, 0.33, 0.08))  # complementary, split, triadic, analogous
    base_l = rng.uniform(0.28, 0.62)
    sat = rng.uniform(0.45, 0.8)
    return (
        _hls(h, base_l, sat),
        _hls(h + 0.06, base_l + 0.14, sat * 0.9),
        _hls(h + scheme, 0.62, min(1.0, sat + 0.15)),
        _hls(h, 0.12, sat * 0.6),
        _hls(h + scheme * 0.5, 0.8, 0.7),
    )


def _palette(text: str, tokens: list[str], rng: random.Random) -> tuple[_Palette, _Mood]:
    # Colour words in order of appearance.
    found = [_COLOUR_WORDS[t] for t in dict.fromkeys(tokens) if t in _COLOUR_WORDS]
    if found:
        base = found[0]
        bg_a, bg_b = base[0], base[1]
        if len(found) > 1:
            # "teal and orange": second colour blends into the gradient and leads the accents.
            bg_b = _mix(base[1], found[1][0], 0.45)
        accents: list[RGB] = []
        for extra in found[1:]:
            accents.extend(extra[:3])
        accents.extend(base[2:])
    else:
        seeded = _seed_palette(rng)
        bg_a, bg_b, accents = seeded[0], seeded[1], list(seeded[2:])

    mood = _Mood()
    padded = f" {text} "
    for phrase in _MOOD_PHRASES:
        if f" {phrase} " in padded:
            m = _MOOD_WORDS[phrase]
            mood = _Mood(
                mood.brightness * m.brightness,
                mood.saturation * m.saturation,
                max(-1.5, min(1.5, mood.warmth + m.warmth)),
                mood.busy * m.busy,
            )
            padded = padded.replace(f" {phrase} ", " ")

    colours = [_adjust(c, mood) for c in (bg_a, bg_b, *accents)]
    light = _mix(max(colours, key=_luma), (255, 255, 255), 0.75)
    dark = _mix(min(colours, key=_luma), (0, 0, 0), 0.7)
    return _Palette(colours[0], colours[1], tuple(colours[2:]), light, dark), mood


# ------------------------------------------------------------------------------------------- background


def _gradient(size: tuple[int, int], pal: _Palette, rng: random.Random) -> Image.Image:
    """Smooth two-colour gradient, linear at a seeded angle or radial, at ``size``.

    Only the scalar position along the ramp is computed (on a tiny grid, in Python) and upscaled as a single
    ``L`` channel with BICUBIC; the colours are applied with one lookup table per channel. That is about
    half the cost of upscaling an RGB image, and BICUBIC avoids the Mach bands BILINEAR leaves between cells.
    """
    w, h = size
    cells = _GRADIENT_CELLS
    gw, gh = (cells, max(2, round(cells * h / w))) if w >= h else (max(2, round(cells * w / h)), cells)
    radial = rng.random() < 0.35
    angle = rng.uniform(0, math.tau)
    dx, dy = math.cos(angle), math.sin(angle)
    norm = abs(dx) + abs(dy)
    cx, cy = rng.uniform(0.3, 0.7), rng.uniform(0.25, 0.6)
    field: list[int] = []
    for y in range(gh):
        ny = y / (gh - 1)
        for x in range(gw):
            nx = x / (gw - 1)
            if radial:
                t = 1 - _clamp(math.hypot(nx - cx, ny - cy) / 0.8)
            else:
                t = _clamp(0.5 + ((nx - 0.5) * dx + (ny - 0.5) * dy) / norm)
            field.append(round(255 * t * t * (3 - 2 * t)))  # smoothstep
    small = Image.new("L", (gw, gh))
    small.putdata(field)
    ramp = small.resize(size, Image.Resampling.BICUBIC)
    a, b = pal.bg_a, pal.bg_b
    channels = [ramp.point([round(a[c] + (b[c] - a[c]) * i / 255) for i in range(256)]) for c in range(3)]
    return Image.merge("RGB", channels)


# ----------------------------------------------------------------------------------------------- shapes


def _rgba(c: RGB, alpha: int) -> RGBA:
    return (c[0], c[1], c[2], alpha)


class _Canvas:
    """Working canvas. Unit coordinates are fractions of width/height; ``s`` is the size unit.

    Fills are RGBA: translucent ones blend, opaque ones go through a plain ``ImageDraw`` (no blending),
    which is several times faster for large areas.
    """

    def __init__(self, image: Image.Image, rng: random.Random, pal: _Palette) -> None:
        self.image = image
        self._blend = ImageDraw.Draw(image, "RGBA")
        self._solid = ImageDraw.Draw(image)
        self.w, self.h = image.size
        self.s = min(self.w, self.h)  # unit for sizes, so shapes keep proportions at every ratio
        self.rng = rng
        self.pal = pal

    def accent(self, i: int) -> RGB:
        acc = self.pal.accents
        return acc[i % len(acc)] if acc else self.pal.light

    def silhouette(self, colour: RGB, amount: float) -> RGB:
        """``colour`` pushed away from the background: darker on light skies, lighter on dark ones."""
        if _luma(_mix(self.pal.bg_a, self.pal.bg_b, 0.5)) > 80:
            return _mix(colour, self.pal.dark, amount)
        return _mix(colour, self.pal.light, amount * 0.5)

    def _pick(self, fill: RGBA) -> tuple[ImageDraw.ImageDraw, RGBA | RGB]:
        if fill[3] >= 255:
            return self._solid, (fill[0], fill[1], fill[2])
        return self._blend, fill

    def ellipse(self, box: tuple[float, float, float, float], fill: RGBA) -> None:
        draw, ink = self._pick(fill)
        draw.ellipse(box, fill=ink)

    def rect(self, box: tuple[float, float, float, float], fill: RGBA, radius: float = 0) -> None:
        draw, ink = self._pick(fill)
        if radius > 0:
            draw.rounded_rectangle(box, radius=radius, fill=ink)
        else:
            draw.rectangle(box, fill=ink)

    def ring(self, box: tuple[float, float, float, float], colour: RGBA, width: int) -> None:
        draw, ink = self._pick(colour)
        draw.ellipse(box, outline=ink, width=max(1, width))

    def line(self, points: Sequence[tuple[float, float]], colour: RGBA, width: int) -> None:
        draw, ink = self._pick(colour)
        draw.line(list(points), fill=ink, width=max(1, width), joint="curve")

    def circle(self, cx: float, cy: float, r: float, fill: RGBA) -> None:
        """Circle at unit coordinates (``cx``, ``cy``) with radius ``r`` in size units."""
        x, y = cx * self.w, cy * self.h
        rr = r * self.s
        self.ellipse((x - rr, y - rr, x + rr, y + rr), fill)

    def polygon(self, points: Sequence[tuple[float, float]], fill: RGBA) -> None:
        """Polygon in unit coordinates."""
        draw, ink = self._pick(fill)
        draw.polygon([(x * self.w, y * self.h) for x, y in points], fill=ink)


def _sun(cv: _Canvas, slot: int) -> None:
    cx = cv.rng.uniform(0.3, 0.7)
    cy = cv.rng.uniform(0.22, 0.34)
    sun = _mix(cv.accent(0), (255, 236, 170), 0.55)
    for i, alpha in enumerate((28, 40, 60)):
        cv.circle(cx, cy, 0.2 - i * 0.035, _rgba(sun, alpha))
    cv.circle(cx, cy, 0.1, _rgba(sun, 245))


def _moon(cv: _Canvas, slot: int) -> None:
    cx, cy, r = cv.rng.uniform(0.6, 0.8), cv.rng.uniform(0.18, 0.3), 0.08
    cv.circle(cx, cy, r * 1.8, _rgba(cv.pal.light, 26))
    # Crescent = disc minus an offset disc, cut in a small mask so the sky shows through.
    rr = max(2, round(r * cv.s))
    mask = Image.new("L", (2 * rr + 1, 2 * rr + 1), 0)
    mdraw = ImageDraw.Draw(mask)
    mdraw.ellipse((0, 0, 2 * rr, 2 * rr), fill=240)
    off_x, off_y = round(rr * 0.5), -round(rr * 0.25)
    mdraw.ellipse((off_x, off_y, off_x + 2 * rr, off_y + 2 * rr), fill=0)
    box = (round(cx * cv.w) - rr, round(cy * cv.h) - rr)
    cv.image.paste(
        _mix(cv.pal.light, (255, 250, 225), 0.5), (*box, box[0] + mask.width, box[1] + mask.height), mask
    )


def _mountains(cv: _Canvas, slot: int) -> None:
    # Three ranges, hazy and tall at the back, dark and low at the front (aerial perspective).
    rock = cv.accent(1)
    for layer in range(3):
        base = 0.66 + layer * 0.1
        shade = _mix(cv.silhouette(rock, 0.3 + 0.3 * layer), cv.pal.bg_b, 0.4 * (2 - layer) / 2)
        pts: list[tuple[float, float]] = [(0.0, 1.0), (0.0, base + cv.rng.uniform(-0.04, 0.02))]
        peaks: list[tuple[float, float]] = []
        x = cv.rng.uniform(-0.15, 0.0)
        while x < 1.0:
            span = cv.rng.uniform(0.22, 0.42)
            peak = (
                x + span * cv.rng.uniform(0.35, 0.65),
                base - cv.rng.uniform(0.1, 0.24) * (1 - layer * 0.3),
            )
            peaks.append(peak)
            x += span
            pts.extend((peak, (x, base + cv.rng.uniform(-0.02, 0.04))))
        pts.append((1.0, 1.0))
        cv.polygon(pts, _rgba(shade, 255))
        if layer == 0:  # snow caps on the back range, following the slopes
            i = 2
            for px, py in peaks:
                left, right = pts[i - 1], pts[i + 1]
                f = 0.22
                cv.polygon(
                    [
                        (px, py),
                        (px + (left[0] - px) * f, py + (left[1] - py) * f),
                        (px, py + (base - py) * f * 0.8),
                        (px + (right[0] - px) * f, py + (right[1] - py) * f),
                    ],
                    _rgba(cv.pal.light, 210),
                )
                i += 2


def _city(cv: _Canvas, slot: int) -> None:
    # Two rows of towers; the back row is hazed towards the sky colour (opaque: cheaper than blending).
    for row, base in enumerate((0.7, 0.8)):
        shade = _mix(cv.accent(row + 1), cv.pal.dark, 0.45 + row * 0.3)
        if row == 0:
            shade = _mix(shade, cv.pal.bg_b, 0.4)
        win = _rgba(_mix(cv.accent(0), (255, 230, 160), 0.6), 255)
        x = -0.02
        while x < 1.0:
            bw = cv.rng.uniform(0.05, 0.11)
            top = base - cv.rng.uniform(0.12, 0.38) * (1.15 - row * 0.3)
            cv.rect((x * cv.w, top * cv.h, (x + bw) * cv.w, cv.h), _rgba(shade, 255))
            if row == 1:  # a few lit windows
                ww, wh = bw * cv.w * 0.18, max(2.0, cv.h * 0.012)
                for wy in range(3):
                    for wx in range(2):
                        if cv.rng.random() < 0.55:
                            x0 = (x + bw * (0.2 + wx * 0.42)) * cv.w
                            y0 = (top + 0.03 + wy * 0.045) * cv.h
                            cv.rect((x0, y0, x0 + ww, y0 + wh), win)
            x += bw + cv.rng.uniform(0.0, 0.015)


def _waves(cv: _Canvas, slot: int) -> None:
    sand = _mix(cv.pal.light, (236, 214, 170), 0.6)
    cv.polygon([(0, 0.86), (0.5, 0.83), (1, 0.88), (1, 1), (0, 1)], _rgba(sand, 255))
    for band in range(3):
        base = 0.64 + band * 0.075
        amp = 0.018 + band * 0.006
        freq = cv.rng.uniform(1.5, 3.0)
        phase = cv.rng.uniform(0, math.tau)
        colour = _mix(cv.accent(band), (20, 90, 160), 0.35)
        steps = 48
        pts = [
            (i / steps, base + amp * math.sin(phase + i / steps * freq * math.tau)) for i in range(steps + 1)
        ]
        edge = [(x, y + 0.028) for x, y in reversed(pts)]
        cv.polygon([*pts, *edge], _rgba(_mix(colour, (255, 255, 255), 0.5), 200))
        cv.polygon(
            [*[(x, y + 0.012) for x, y in pts], (1, 0.86 + band * 0.01), (0, 0.86)], _rgba(colour, 235)
        )


def _trees(cv: _Canvas, slot: int) -> None:
    n = cv.rng.randint(5, 9)
    for i in range(n):
        x = (i + cv.rng.uniform(0.1, 0.9)) / n
        height = cv.rng.uniform(0.18, 0.32)
        base = cv.rng.uniform(0.9, 0.98)
        half = height * 0.28 * cv.s / cv.w
        shade = cv.silhouette(cv.accent(i), 0.55)
        cv.polygon([(x, base - height), (x - half, base), (x + half, base)], _rgba(shade, 235))


def _cup(cv: _Canvas, slot: int) -> None:
    cx, base = 0.5 + (0.18 if slot else 0.0), 0.86
    u = 0.16 * cv.s
    x, y = cx * cv.w, base * cv.h
    body = _mix(cv.accent(0), cv.pal.light, 0.35)
    shade = _mix(body, cv.pal.dark, 0.35)
    cv.ellipse((x - u * 1.6, y - u * 0.22, x + u * 1.6, y + u * 0.22), _rgba(shade, 230))  # saucer
    cv.ring((x + u * 0.55, y - u * 1.25, x + u * 1.45, y - u * 0.45), _rgba(body, 255), round(u * 0.18))
    cv.rect((x - u, y - u * 1.55, x + u, y - u * 0.05), _rgba(body, 255), radius=u * 0.45)
    cv.ellipse((x - u, y - u * 1.75, x + u, y - u * 1.35), _rgba(body, 255))
    cv.ellipse(
        (x - u * 0.86, y - u * 1.7, x + u * 0.86, y - u * 1.4),
        _rgba(_mix(cv.pal.dark, (110, 70, 40), 0.5), 255),
    )
    for k in (-1, 0, 1):  # steam
        sx = x + k * u * 0.45
        pts = [(sx + math.sin(t / 3) * u * 0.12, y - u * 1.95 - t * u * 0.12) for t in range(10)]
        cv.line(pts, _rgba(cv.pal.light, 120), round(u * 0.07))


def _flower(cv: _Canvas, slot: int) -> None:
    cx, cy = 0.5 - (0.2 if slot else 0.0), 0.66
    r = 0.075
    stem = _mix(cv.pal.dark, (60, 130, 70), 0.6)
    x, y = cx * cv.w, cy * cv.h
    cv.line([(x, y), (x, cv.h)], _rgba(stem, 255), round(cv.s * 0.018))
    cv.ellipse((x, y + cv.s * 0.14, x + cv.s * 0.16, y + cv.s * 0.2), _rgba(stem, 240))
    petal = cv.accent(0)
    n = cv.rng.randint(6, 9)
    turn = cv.rng.uniform(0, math.tau)
    for i in range(n):
        a = turn + i * math.tau / n
        px = x + math.cos(a) * r * cv.s
        py = y + math.sin(a) * r * cv.s
        rr = r * 0.75 * cv.s
        cv.ellipse((px - rr, py - rr, px + rr, py + rr), _rgba(petal, 225))
    cv.circle(cx, cy, r * 0.6, _rgba(_mix(cv.accent(1), (250, 200, 60), 0.5), 255))


_Subject = Callable[[_Canvas, int], None]
# Order is drawing order: sky first, then landscape, then foreground objects.
_SUBJECTS: dict[str, tuple[int, _Subject]] = {
    "sun": (0, _sun),
    "sunny": (0, _sun),
    "sunrise": (0, _sun),
    "sunset": (0, _sun),
    "moon": (0, _moon),
    "night": (0, _moon),
    "moonlight": (0, _moon),
    "mountain": (1, _mountains),
    "mountains": (1, _mountains),
    "alps": (1, _mountains),
    "hills": (1, _mountains),
    "peak": (1, _mountains),
    "landscape": (1, _mountains),
    "city": (1, _city),
    "skyline": (1, _city),
    "downtown": (1, _city),
    "buildings": (1, _city),
    "street": (1, _city),
    "lisbon": (1, _city),
    "beach": (1, _waves),
    "wave": (1, _waves),
    "waves": (1, _waves),
    "sea": (1, _waves),
    "ocean": (1, _waves),
    "surf": (1, _waves),
    "coast": (1, _waves),
    "tree": (2, _trees),
    "trees": (2, _trees),
    "forest": (2, _trees),
    "pine": (2, _trees),
    "cup": (3, _cup),
    "mug": (3, _cup),
    "coffee": (3, _cup),
    "latte": (3, _cup),
    "espresso": (3, _cup),
    "tea": (3, _cup),
    "cafe": (3, _cup),
    "flower": (3, _flower),
    "flowers": (3, _flower),
    "rose": (3, _flower),
    "tulip": (3, _flower),
    "bloom": (3, _flower),
    "garden": (3, _flower),
    "floral": (3, _flower),
}


def _abstract(cv: _Canvas, count: int) -> None:
    """Seeded circles, rounded rectangles and diagonal bands: the generic 'poster' composition."""
    rng = cv.rng
    for i in range(count):
        kind = rng.random()
        colour = cv.accent(i)
        alpha = rng.randint(70, 190)
        if kind < 0.42:
            cv.circle(
                rng.uniform(-0.05, 1.05),
                rng.uniform(-0.05, 1.05),
                rng.uniform(0.06, 0.32),
                _rgba(colour, alpha),
            )
        elif kind < 0.72:
            x0, y0 = rng.uniform(-0.1, 0.8) * cv.w, rng.uniform(-0.1, 0.85) * cv.h
            rw, rh = rng.uniform(0.15, 0.5) * cv.s, rng.uniform(0.08, 0.35) * cv.s
            cv.rect(
                (x0, y0, x0 + rw, y0 + rh), _rgba(colour, alpha), radius=min(rw, rh) * rng.uniform(0.1, 0.5)
            )
        else:
            t = rng.uniform(0.04, 0.14)
            y_left, y_right = rng.uniform(-0.2, 1.0), rng.uniform(0.0, 1.2)
            cv.polygon(
                [(0, y_left), (1, y_right), (1, y_right + t), (0, y_left + t)], _rgba(colour, alpha // 2 + 40)
            )


def _detail(cv: _Canvas) -> None:
    """Richer detail (nano-banana-pro): light rays, a dot grid and fine rings."""
    rng = cv.rng
    light = cv.pal.light
    ox, oy = rng.uniform(0.1, 0.9) * cv.w, -0.1 * cv.h
    for i in range(7):
        a = math.pi * (0.2 + i * 0.09) + rng.uniform(-0.02, 0.02)
        far = 2.0 * max(cv.w, cv.h)
        spread = 0.025
        ray = [
            (ox, oy),
            (ox + math.cos(a - spread) * far, oy + math.sin(a - spread) * far),
            (ox + math.cos(a + spread) * far, oy + math.sin(a + spread) * far),
        ]
        cv.polygon([(px / cv.w, py / cv.h) for px, py in ray], _rgba(light, 16))
    step = max(6.0, cv.s * 0.03)
    gx0, gy0 = rng.uniform(0.05, 0.6) * cv.w, rng.uniform(0.05, 0.6) * cv.h
    dot = max(1.0, step * 0.14)
    dot_fill = _rgba(light, 120)
    for j in range(8):
        for i in range(8):
            x, y = gx0 + i * step, gy0 + j * step
            cv.ellipse((x - dot, y - dot, x + dot, y + dot), dot_fill)
    cx, cy = rng.uniform(0.2, 0.8) * cv.w, rng.uniform(0.2, 0.8) * cv.h
    for k in range(4):
        r = cv.s * (0.12 + k * 0.05)
        cv.ring((cx - r, cy - r, cx + r, cy + r), _rgba(light, 60), round(cv.s * 0.003))


def _crop_marks(draw: ImageDraw.ImageDraw, w: int, h: int, colour: RGBA) -> None:
    m = max(4, round(min(w, h) * 0.025))
    ln = max(6, round(min(w, h) * 0.05))
    width = max(1, round(min(w, h) * 0.002))
    for x, sx in ((m, 1), (w - 1 - m, -1)):
        for y, sy in ((m, 1), (h - 1 - m, -1)):
            draw.line([(x, y), (x + sx * ln, y)], fill=colour, width=width)
            draw.line([(x, y), (x, y + sy * ln)], fill=colour, width=width)


# ------------------------------------------------------------------------------------------------- text


@dataclass(frozen=True, slots=True)
class TextLayout:
    """Fitted text block: font size, wrapped lines and block size in pixels (stroke included)."""

    size: int
    lines: tuple[str, ...]
    line_height: int
    spacing: int
    stroke: int
    width: int
    height: int


def _stroke_for(size: int) -> int:
    return max(1, round(size / 22))


def _wrap(paragraphs: Sequence[str], font: ImageFont.FreeTypeFont, max_w: float) -> list[str] | None:
    """Greedy word wrap; ``None`` if a single word is wider than ``max_w`` at this size."""
    lines: list[str] = []
    space = font.getlength(" ")
    for para in paragraphs:
        current: list[str] = []
        current_w = 0.0
        for word in para.split(" "):
            ww = font.getlength(word)
            if ww > max_w:
                return None
            if current and current_w + space + ww > max_w:
                lines.append(" ".join(current))
                current, current_w = [word], ww
            else:
                current_w = current_w + space + ww if current else ww
                current.append(word)
        lines.append(" ".join(current))
    return lines


def _break_chars(paragraphs: Sequence[str], font: ImageFont.FreeTypeFont, max_w: float) -> list[str]:
    """Last resort for very long words at the minimum size: break anywhere."""
    lines: list[str] = []
    for para in paragraphs:
        current = ""
        for ch in para:
            if current and font.getlength(current + ch) > max_w:
                lines.append(current.rstrip())
                current = ch.lstrip()
            else:
                current += ch
        lines.append(current)
    return lines


def _measure(lines: Sequence[str], size: int) -> TextLayout:
    font = load_font(size)
    ascent, descent = font.getmetrics()
    line_h = ascent + descent
    spacing = round(size * 0.12)
    stroke = _stroke_for(size)
    width = max((font.getlength(line) for line in lines), default=0.0)
    height = len(lines) * line_h + (len(lines) - 1) * spacing
    return TextLayout(
        size, tuple(lines), line_h, spacing, stroke, math.ceil(width) + 2 * stroke, height + 2 * stroke
    )


def layout_text(text: str, box_width: int, box_height: int) -> TextLayout:
    """Largest font size (binary search) at which ``text`` wraps into ``box_width`` x ``box_height``.

    Newlines in ``text`` separate paragraphs. If even the minimum size does not fit, words are broken
    and the lines that do not fit the height are dropped, the last one ending with "…".
    """
    paragraphs = [" ".join(p.split()) for p in text.split("\n")]
    paragraphs = [p for p in paragraphs if p] or [""]
    min_size = max(6, min(box_height // 2, 10))

    def fit(size: int) -> TextLayout | None:
        stroke = _stroke_for(size)
        lines = _wrap(paragraphs, load_font(size), box_width - 2 * stroke)
        if lines is None:
            return None
        measured = _measure(lines, size)
        return measured if measured.width <= box_width and measured.height <= box_height else None

    best = fit(min_size)
    if best is None:
        font = load_font(min_size)
        lines = _break_chars(paragraphs, font, box_width - 2 * _stroke_for(min_size))
        layout = _measure(lines, min_size)
        while len(lines) > 1 and layout.height > box_height:
            lines = [*lines[:-2], lines[-2].rstrip(" .…") + "…"]
            layout = _measure(lines, min_size)
        return layout
    lo, hi = min_size + 1, max(min_size + 1, box_height)
    while lo <= hi:
        mid = (lo + hi) // 2
        got = fit(mid)
        if got is None:
            hi = mid - 1
        else:
            best, lo = got, mid + 1
    return best


def _draw_text(
    image: Image.Image, work: Image.Image, text: str, pal: _Palette, style: _Style, centre_y: float
) -> None:
    """Fit ``text`` into the style's box, centred at ``centre_y`` (fraction of height), and draw it."""
    w, h = image.size
    # The plate (if any) is part of the block: the text is fitted inside it, so the whole block still
    # respects the style's share of the frame.
    pad = round(min(w, h) * 0.035) if style.plate else 0
    box_w = max(1, round(w * style.text_w) - 2 * pad)
    box_h = max(1, round(h * style.text_h) - 2 * pad)
    layout = layout_text(text, box_w, box_h)
    margin = round(min(w, h) * 0.06)
    block_h = layout.height + 2 * pad
    top = round(centre_y * h - block_h / 2)
    top = max(0, margin, min(top, h - margin - block_h)) + pad  # top of the text itself
    left = (w - layout.width) // 2

    # Contrast against what is actually behind the block (measured on the small working image).
    sx, sy = work.width / w, work.height / h
    behind = _behind(work, (left * sx, top * sy, (left + layout.width) * sx, (top + layout.height) * sy))
    if behind < 150:
        fill, edge = _mix(pal.light, (255, 255, 255), 0.6), _mix(pal.dark, (0, 0, 0), 0.5)
    else:
        fill, edge = _mix(pal.dark, (0, 0, 0), 0.45), _mix(pal.light, (255, 255, 255), 0.6)

    draw = ImageDraw.Draw(image, "RGBA")
    font = load_font(layout.size)
    if pad:
        draw.rounded_rectangle(
            (left - pad, top - pad, left + layout.width + pad, top + layout.height + pad),
            radius=pad,
            fill=_rgba(edge, 120),
        )
    shadow = max(1, round(layout.size * 0.045))
    cx = w / 2
    y = top + layout.stroke
    for line in layout.lines:
        draw.text(
            (cx + shadow, y + shadow),
            line,
            font=font,
            fill=_rgba(edge, 110),
            anchor="ma",
            stroke_width=layout.stroke,
            stroke_fill=_rgba(edge, 110),
        )
        draw.text(
            (cx, y),
            line,
            font=font,
            fill=_rgba(fill, 255),
            anchor="ma",
            stroke_width=layout.stroke,
            stroke_fill=_rgba(edge, 255),
        )
        y += layout.line_height + layout.spacing


def _behind(image: Image.Image, box: tuple[float, float, float, float]) -> float:
    """Mean luma of ``image`` inside ``box`` (clamped to the image, at least one pixel)."""
    w, h = image.size
    x0 = max(0, min(w - 1, math.floor(box[0])))
    y0 = max(0, min(h - 1, math.floor(box[1])))
    x1 = max(x0 + 1, min(w, math.ceil(box[2])))
    y1 = max(y0 + 1, min(h, math.ceil(box[3])))
    return _luma(ImageStat.Stat(image.crop((x0, y0, x1, y1))).mean)


def _draw_label(image: Image.Image, model: str) -> None:
    """Small "OFFLINE DRAFT · model" tag in the bottom-right corner, so nobody mistakes it for a photo."""
    w, h = image.size
    size = max(8, round(min(w, h) * 0.02))
    font = load_font(size, bold=False)
    label = f"OFFLINE DRAFT · {model}"
    margin = max(4, round(min(w, h) * 0.035))
    draw = ImageDraw.Draw(image, "RGBA")
    x, y = w - margin, h - margin
    left, top, right, bottom = draw.textbbox((x, y), label, font=font, anchor="rd")
    colour = (255, 255, 255) if _behind(image, (left, top, right, bottom)) < 150 else (20, 20, 20)
    pad = max(2, size // 3)
    draw.rounded_rectangle(
        (left - pad, top - pad, right + pad, bottom + pad), radius=pad, outline=_rgba(colour, 110), width=1
    )
    draw.text((x, y), label, font=font, fill=_rgba(colour, 190), anchor="rd")


# ------------------------------------------------------------------------------------------------ entry


def _seed(model: str, prompt: str, width: int, height: int) -> int:
    digest = hashlib.sha256(f"{model}\0{prompt}\0{width}x{height}".encode()).digest()
    return int.from_bytes(digest, "big")


def render_offline(model: str, prompt: str, width: int, height: int) -> Image.Image:
    """Draw a deterministic draft for ``prompt`` as an RGB image of exactly ``width`` x ``height``."""
    if width <= 0 or height <= 0:
        raise ValueError(f"size must be positive, got {width}x{height}")
    # Not for security: a reproducible pseudo-random stream seeded from the inputs.
    rng = random.Random(_seed(model, prompt, width, height))  # noqa: S311
    style = _STYLES.get(model, _DEFAULT_STYLE)
    lowered = _unquoted(prompt)
    tokens = _WORD_RE.findall(lowered)
    pal, mood = _palette(" ".join(tokens), tokens, rng)

    # Compose at 2x the working size and halve with reduce() (a box filter): cheap anti-aliasing for
    # ImageDraw's hard-edged shapes. Then one BILINEAR upscale to the target; text is drawn after that.
    scale = min(0.5, _WORK_LONG_SIDE / max(width, height))
    work_size = (max(1, round(width * scale)), max(1, round(height * scale)))
    canvas = _gradient((work_size[0] * 2, work_size[1] * 2), pal, rng)
    cv = _Canvas(canvas, rng, pal)

    subjects: dict[_Subject, int] = {}
    for token in tokens:
        entry = _SUBJECTS.get(token)
        if entry is not None and entry[1] not in subjects and len(subjects) < 2:
            subjects[entry[1]] = entry[0]
    shape_count = max(1, round(style.shapes * mood.busy * (0.5 if subjects else 1.0)))
    _abstract(cv, shape_count)
    if style.detail:
        _detail(cv)
    for slot, subject in enumerate(sorted(subjects, key=lambda s: subjects[s])):
        subject(cv, slot)

    work = canvas.reduce(2)
    image = work.resize((width, height), Image.Resampling.BILINEAR) if work.size != (width, height) else work
    quotes = extract_quoted_text(prompt)
    text = "\n".join(quotes)
    if len(text) > _MAX_TEXT_CHARS:
        text = text[: _MAX_TEXT_CHARS - 1].rstrip() + "…"
    draw = ImageDraw.Draw(image, "RGBA")
    _crop_marks(draw, width, height, _rgba(pal.light, 120))
    if text:
        centre_y = 0.36 if subjects else 0.5
        _draw_text(image, work, text, pal, style, centre_y)
    _draw_label(image, model)
    return image
