"""Everything behind the text: background gradient, abstract shapes, detail, subject silhouettes."""

from __future__ import annotations

import math
import random
from collections.abc import Callable

from PIL import Image, ImageDraw

from postengine.generation.render.canvas import _Canvas
from postengine.generation.render.palette import RGBA, _clamp, _mix, _Palette, _rgba

# Size of the tiny gradient grid computed in Python before being scaled up (cheap and smooth).
_GRADIENT_CELLS = 40


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
