"""Text for the offline renderer: quoted text in the prompt, font fitting and layout, drawing."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

from PIL import Image, ImageDraw, ImageFont, ImageStat

from postengine.generation.render.palette import _luma, _mix, _Palette, _rgba
from postengine.generation.render.style import _Style
from postengine.kit.image import load_font

# Quoted text: at most this many quotes and characters in total (longer text is truncated with "…").
_MAX_QUOTES = 3
_MAX_TEXT_CHARS = 160

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
