"""A Vietnamese payment receipt, as it comes out of the simulated printer through the daemon,
against a checked-in golden PNG (tests/golden_image.py: strict on layout, tolerant of
anti-aliasing); and the comparison itself: what it lets through and what it catches."""

from __future__ import annotations

import pathlib
from collections.abc import Callable

import pytest
from conftest import run
from golden_image import GOLDEN_DIR, check, compare
from harness import Station
from PIL import Image, ImageDraw

from protocols import vietqr

PART, DEV = "escpos_printer", "printer0"
GOLDEN = "payment_receipt_80mm.png"
RECEIPT = {"amount": 150000, "transaction_id": "TX20261203091500", "method": "VietQR",
           "time": "03/12/2026 09:15", "address": "Phường Bến Nghé, Quận 1, TP. Hồ Chí Minh",
           "items": [{"label": "Lệ phí cấp đổi thẻ Căn cước", "amount": 100000},
                     {"label": "Phí chuyển phát nhanh", "amount": 50000}],
           "vietqr": vietqr.build("970436", "0011004321", amount=150000, bill_number="HS123")}


def test_a_vietnamese_receipt_comes_out_as_the_golden_image(station: Callable[..., Station]) -> None:
    st = station(only={PART})

    async def go() -> None:
        async with st.client() as hal:
            await st.until_online(hal, DEV)
            r = await hal.call("printer.print", {"job_id": "golden-1", "template": "payment_receipt",
                                                 "data": RECEIPT})
            assert r["status"] == "printed"

    run(go())
    (job,) = st.control(PART, "jobs")["jobs"]
    with Image.open(job["png"]) as paper:
        problems = check(paper, GOLDEN)
    assert problems == [], "\n".join(problems)


@pytest.fixture(scope="module")
def golden() -> Image.Image:
    path = GOLDEN_DIR / GOLDEN
    if not path.is_file():
        pytest.skip("no golden yet")
    with Image.open(path) as img:
        return img.convert("L")


def edge_dots(img: Image.Image) -> list[tuple[int, int]]:
    w, h = img.size
    px = img.load()
    assert px is not None
    return [(x, y) for y in range(1, h - 1) for x in range(1, w - 1)
            if px[x, y] == 0 and px[x + 1, y] == 255]


def test_anti_aliasing_noise_and_a_one_dot_shift_pass(golden: Image.Image) -> None:
    assert compare(golden, golden) == []
    noisy = golden.copy()
    px = noisy.load()
    assert px is not None
    for i, (x, y) in enumerate(edge_dots(golden)):
        if i % 17 == 0:  # a glyph edge a dot fatter here and there
            px[x + 1, y] = 0
        elif i % 17 == 9:  # ... or thinner
            px[x, y] = 255
    assert compare(noisy, golden) == []
    shifted = Image.new("L", golden.size, 255)
    shifted.paste(golden.crop((0, 0, golden.width - 1, golden.height)), (1, 0))
    assert compare(shifted, golden) == []


def test_a_moved_line_a_lost_tone_mark_or_other_paper_fail(golden: Image.Image,
                                                           tmp_path: pathlib.Path) -> None:
    from golden_image import bands

    title = bands(golden)[2]  # the big title line
    moved = golden.copy()
    strip = golden.crop((0, title[0], golden.width, title[1]))
    ImageDraw.Draw(moved).rectangle((0, title[0], golden.width, title[1]), fill=255)
    moved.paste(strip, (0, title[0] + 3))  # 3 dots lower
    assert any("band" in p for p in compare(moved, golden)), compare(moved, golden)

    # A tone mark: the ink above the body of the line — blank a small patch of it.
    top, bottom, left, right = bands(golden)[0]
    lost = golden.copy()
    box = next((x, y) for y in range(top, bottom) for x in range(left, right) if golden.getpixel((x, y)) == 0)
    ImageDraw.Draw(lost).rectangle((box[0] - 1, box[1] - 1, box[0] + 5, box[1] + 5), fill=255)
    assert compare(lost, golden), "a blanked mark went unnoticed"

    narrow = golden.crop((0, 0, 384, golden.height))
    assert compare(narrow, golden)[0].startswith("paper 384")
