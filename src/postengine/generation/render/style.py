"""Per-model styling for the offline renderer."""

from __future__ import annotations

from dataclasses import dataclass


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
