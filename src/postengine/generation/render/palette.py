"""Colours for the offline renderer: colour and mood word tables, palette selection, colour helpers."""

from __future__ import annotations

import colorsys
import random
from collections.abc import Sequence
from dataclasses import dataclass

RGB = tuple[int, int, int]
RGBA = tuple[int, int, int, int]


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


def _rgba(c: RGB, alpha: int) -> RGBA:
    return (c[0], c[1], c[2], alpha)
