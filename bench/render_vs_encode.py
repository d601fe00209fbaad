"""Offline renderer: time to draw vs time to WebP-encode, per model size.

Usage::

    python bench/render_vs_encode.py                # every model at 1:1
    python bench/render_vs_encode.py --all-ratios   # every model x every aspect ratio
    python bench/render_vs_encode.py --methods      # also: WebP method 0..6 at 2048x2048

Each figure is the median of ``--runs`` runs (default 5) after one warm-up run (which loads the fonts).
The goal is ``draw/encode < 1`` everywhere: encoding, not drawing, should dominate. Exits with status 1
if any size misses it.
"""

from __future__ import annotations

import argparse
import functools
import io
import statistics
import sys
import time
from collections.abc import Callable

from PIL import Image

from postengine.generation.render import render_offline
from postengine.kit.image import WEBP_METHOD, encode_webp

MODELS = {"nano-banana-pro": 2048, "gemini-3-pro": 1536, "ideogram-v2": 1024, "flux-schnell": 1024}
RATIOS = ["1:1", "16:9", "9:16", "4:3", "3:4", "4:5", "5:4"]
PROMPT = 'a poster that says "LISBON", warm golden hour light over the city skyline, vibrant'


def size_for(long_side: int, ratio: str) -> tuple[int, int]:
    """Long side = ``long_side``; short side = long x short/long rounded to the nearest multiple of 8."""
    a, b = (int(x) for x in ratio.split(":"))
    short = round(long_side * min(a, b) / max(a, b) / 8) * 8
    return (long_side, short) if a >= b else (short, long_side)


def median_ms(fn: Callable[[], object], runs: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def bench_sizes(ratios: list[str], runs: int) -> bool:
    ok = True
    print(f"WebP quality 82, method {WEBP_METHOD}; median of {runs} runs")
    print(
        f"{'model':<16} {'ratio':>5} {'size':>10} {'draw ms':>9} {'encode ms':>10} {'draw/enc':>9} {'KiB':>6}"
    )
    for model, long_side in MODELS.items():
        for ratio in ratios:
            w, h = size_for(long_side, ratio)
            image = render_offline(model, PROMPT, w, h)
            draw = median_ms(functools.partial(render_offline, model, PROMPT, w, h), runs)
            encode = median_ms(functools.partial(encode_webp, image), runs)
            kib = len(encode_webp(image)) / 1024
            ratio_de = draw / encode
            ok = ok and ratio_de < 1
            flag = "" if ratio_de < 1 else "  <-- drawing dominates"
            print(
                f"{model:<16} {ratio:>5} {f'{w}x{h}':>10} {draw:9.1f} {encode:10.1f} {ratio_de:9.2f} {kib:6.0f}{flag}"
            )
    return ok


def bench_methods(runs: int) -> None:
    image = render_offline("nano-banana-pro", PROMPT, 2048, 2048)
    print(f"\nWebP method sweep at 2048x2048, quality 82 (median of {runs} runs)")
    base = 0
    for method in range(7):

        def enc(m: int = method, im: Image.Image = image) -> bytes:
            buf = io.BytesIO()
            im.save(buf, format="WEBP", quality=82, method=m)
            return buf.getvalue()

        ms = median_ms(enc, runs)
        size = len(enc())
        base = base or size
        print(f"method {method}: {ms:7.1f} ms  {size / 1024:7.1f} KiB  ({size / base:.2f}x method 0)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--all-ratios", action="store_true", help="every aspect ratio, not only 1:1")
    parser.add_argument("--methods", action="store_true", help="sweep WebP method 0..6 at 2048x2048")
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    ok = bench_sizes(RATIOS if args.all_ratios else ["1:1"], args.runs)
    if args.methods:
        bench_methods(args.runs)
    print(
        "\nOK: encoding dominates everywhere" if ok else "\nFAIL: drawing is slower than encoding somewhere"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
