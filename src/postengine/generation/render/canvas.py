"""The working canvas the offline renderer draws its background shapes on."""

from __future__ import annotations

import random
from collections.abc import Sequence

from PIL import Image, ImageDraw

from postengine.generation.render.palette import RGB, RGBA, _luma, _mix, _Palette


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
