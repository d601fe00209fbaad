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

Modules, one concern each:

* ``palette``: colour and mood word tables, palette selection, colour helpers;
* ``style``: per-model styling (shape count, text box, detail, plate);
* ``canvas``: the working canvas the background shapes are drawn on;
* ``shapes``: background gradient, abstract shapes, detail, subject silhouettes, crop marks;
* ``text``: quote extraction, font fitting and layout, drawing the text and the corner label;
* ``compose``: the ``render_offline`` entry point that puts it all together.
"""

from postengine.generation.render.compose import render_offline
from postengine.generation.render.text import TextLayout, extract_quoted_text, layout_text

__all__ = ["TextLayout", "extract_quoted_text", "layout_text", "render_offline"]
