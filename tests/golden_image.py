"""Golden-image comparison of printed receipts: strict on layout, tolerant of anti-aliasing.

A receipt is compared as 1-bit paper (ink = black):
- layout, strict: the same paper size, the same bands of inked rows (blank rows between lines,
  rules, codes) within 1 dot vertically, each band's left/right ink edges within 2 dots;
- ink, tolerant: every inked dot of one must lie within 1 dot of ink in the other, except a few
  stray dots (a FreeType or font-package update moves glyph edges by a dot here and there);
  such strays are scattered, while a lost tone mark or a changed digit is a cluster, so no 9×9
  window may hold more than 8 of them.

`UPDATE_GOLDEN=1` rewrites the golden instead of comparing (then look at the PNG and commit it).
"""

from __future__ import annotations

import os
import pathlib

from PIL import Image, ImageChops, ImageFilter

GOLDEN_DIR = pathlib.Path(__file__).resolve().parent / "golden"
BAND_DY, BAND_DX = 1, 2
WINDOW, WINDOW_MAX = 9, 8
STRAY_FRACTION = 0.003


def ink(img: Image.Image) -> Image.Image:
    """Mode L, ink 0, paper 255 (PNG from the simulator is mode 1; anything else thresholded)."""
    return img.convert("L").point(lambda v: 0 if v < 128 else 255)


def bands(img: Image.Image) -> list[tuple[int, int, int, int]]:
    """(top, bottom, left, right) of every run of rows that carry ink; a gap of one or two
    blank rows inside a glyph line (where a dot of a thin stroke is all a row has) does not
    split it: ink is grown by a dot first, in both images alike."""
    inv = ImageChops.invert(img.filter(ImageFilter.MinFilter(3)))
    w, h = img.size
    rows = [inv.crop((0, y, w, y + 1)).getbbox() is not None for y in range(h)]
    out: list[tuple[int, int, int, int]] = []
    y = 0
    while y < h:
        if not rows[y]:
            y += 1
            continue
        top = y
        while y < h and rows[y]:
            y += 1
        box = inv.crop((0, top, w, y)).getbbox()
        assert box is not None
        out.append((top, y, box[0], box[2]))
    return out


def _strays(a: Image.Image, b: Image.Image) -> Image.Image:
    """255 where `a` has ink with no ink of `b` within one dot."""
    near_b = b.filter(ImageFilter.MinFilter(3))
    return ImageChops.subtract(near_b, a)


def compare(actual: Image.Image, golden: Image.Image) -> list[str]:
    """What differs, for a human; empty when `actual` matches `golden`."""
    a, g = ink(actual), ink(golden)
    if a.size != g.size:
        return [f"paper {a.size[0]}×{a.size[1]} dots, golden {g.size[0]}×{g.size[1]}"]
    problems: list[str] = []
    ba, bg = bands(a), bands(g)
    if len(ba) != len(bg):
        problems.append(f"{len(ba)} bands of ink, golden {len(bg)}: "
                        f"first tops {[t for t, *_ in ba[:12]]} vs {[t for t, *_ in bg[:12]]}")
    else:
        for i, (x, y) in enumerate(zip(ba, bg, strict=True)):
            if abs(x[0] - y[0]) > BAND_DY or abs(x[1] - y[1]) > BAND_DY:
                problems.append(f"band {i}: rows {x[0]}-{x[1]}, golden {y[0]}-{y[1]}")
            elif abs(x[2] - y[2]) > BAND_DX or abs(x[3] - y[3]) > BAND_DX:
                problems.append(f"band {i} (rows {x[0]}-{x[1]}): ink from x {x[2]} to {x[3]}, "
                                f"golden {y[2]} to {y[3]}")
    ink_dots = g.histogram()[0] or 1
    for name, strays in (("extra", _strays(a, g)), ("missing", _strays(g, a))):
        count = strays.histogram()[255]
        if count > STRAY_FRACTION * ink_dots:
            problems.append(f"{count} {name} dots of ink (> {STRAY_FRACTION:.1%} of {ink_dots})")
        # Clusters: the strays in every 9×9 window (a box blur's mean × area / 255).
        window = strays.filter(ImageFilter.BoxBlur(WINDOW // 2))
        worst = window.getextrema()[1] * WINDOW * WINDOW / 255
        if worst > WINDOW_MAX:
            box = window.point(lambda v: 255 if v * WINDOW * WINDOW / 255 > WINDOW_MAX else 0).getbbox()
            x, y = box[:2] if box else (0, 0)
            problems.append(f"{name} ink clustered near x {x}, y {y} "
                            f"({worst:.0f} dots in {WINDOW}×{WINDOW})")
    return problems


def check(actual: Image.Image, name: str) -> list[str]:
    """Compare with tests/golden/NAME (or write it, with UPDATE_GOLDEN=1)."""
    path = GOLDEN_DIR / name
    if os.environ.get("UPDATE_GOLDEN"):
        GOLDEN_DIR.mkdir(exist_ok=True)
        actual.convert("1").save(path, optimize=True)
        return []
    if not path.is_file():
        return [f"no golden {path}; make it with UPDATE_GOLDEN=1, look at it, commit it"]
    with Image.open(path) as golden:
        return compare(actual, golden)
