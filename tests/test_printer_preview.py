"""printer.preview: the receipt as the printer prints it, drawn by the driver (a real printer
sends no image back). Its raster part must be dot for dot what the simulated printer put on
paper for the same receipt; it needs no claim and prints nothing."""

from __future__ import annotations

import base64
import io
from typing import Any

import pytest
from conftest import run
from harness import Station
from PIL import Image

from halsvc.client import RpcError

PART = "escpos_printer"
DEV = "printer0"
RECEIPT = {"amount": 150000, "method": "Thẻ", "transaction_id": "T0001-000123",
           "items": [{"label": "Tiền nước 11/2026", "amount": 150000}]}


def _image(result: dict[str, Any]) -> Image.Image:
    assert result["mime"] == "image/png"
    img = Image.open(io.BytesIO(base64.b64decode(result["png"])))
    assert (img.width, img.height) == (result["width"], result["height"])
    return img.convert("1")


def test_preview_is_what_comes_out_of_the_printer(station: Any) -> None:
    st: Station = station(only={PART})

    async def go() -> tuple[Image.Image, Image.Image]:
        async with st.client() as hal, st.client() as other:
            await st.until_online(hal, DEV)
            # Another client holds the printer: a preview only looks, so it needs no claim.
            await other.call("device.claim", {"device": DEV})
            text_only = await hal.call("printer.preview", {"document": {"blocks": [
                {"type": "text", "text": "BIÊN NHẬN THANH TOÁN", "bold": True, "size": 2},
                {"type": "columns", "label": "Tổng cộng", "value": "150.000 ₫"}]}})
            full = await hal.call("printer.preview", {"template": "payment_receipt", "data": RECEIPT})
            assert st.control(PART, "jobs")["jobs"] == []  # nothing printed
            await other.call("device.release", {"device": DEV})
            printed = await hal.call("printer.print", {"job_id": "preview-1", "document": {"blocks": [
                {"type": "text", "text": "BIÊN NHẬN THANH TOÁN", "bold": True, "size": 2},
                {"type": "columns", "label": "Tổng cộng", "value": "150.000 ₫"}]}})
            assert printed["status"] == "printed"
            return _image(text_only), _image(full)

    preview, full = run(go())
    (job,) = st.control(PART, "jobs")["jobs"]
    with Image.open(job["png"]) as img:
        paper = img.convert("1")
    assert paper.width == preview.width
    assert paper.crop((0, 0, preview.width, preview.height)).tobytes() == preview.tobytes()
    # The template's receipt has text, QR-less barcode and cut: taller than the two lines.
    assert full.width == 576 and full.height > 2 * preview.height


def test_a_bad_receipt_preview_names_the_field(station: Any) -> None:
    st: Station = station(only={PART})

    async def go() -> None:
        async with st.client() as hal:
            with pytest.raises(RpcError) as info:
                await hal.call("printer.preview", {"document": {"blocks": [
                    {"type": "text", "text": "ok"}, {"type": "image", "png": "not base64!"}]}})
            assert info.value.reason == "invalid_params"
            assert info.value.data["field"].startswith("params.document.blocks[1]")
            with pytest.raises(RpcError) as info:
                await hal.call("printer.preview", {"template": "payment_receipt", "data": {}})
            assert info.value.reason == "invalid_params" and info.value.data["field"] == "params.data.amount"
    run(go())
