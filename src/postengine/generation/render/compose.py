"""The offline renderer's entry point: ``render_offline`` composes background, shapes and text."""

from __future__ import annotations

import hashlib
import random

from PIL import Image, ImageDraw

from postengine.generation.render.canvas import _Canvas
from postengine.generation.render.palette import _palette, _rgba
from postengine.generation.render.shapes import (
    _SUBJECTS,
    _abstract,
    _crop_marks,
    _detail,
    _gradient,
    _Subject,
)
from postengine.generation.render.style import _DEFAULT_STYLE, _STYLES
from postengine.generation.render.text import (
    _MAX_TEXT_CHARS,
    _WORD_RE,
    _draw_label,
    _draw_text,
    _unquoted,
    extract_quoted_text,
)

# Background and shapes end up at this long side (at most half the target's) and are upscaled; they are
# drawn at twice that and halved first, for anti-aliasing.
_WORK_LONG_SIDE = 768


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
