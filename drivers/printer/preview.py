"""A receipt drawn as the printer will print it, for the screen (`printer.preview`).

A real printer sends no image back, so the preview is the driver's own work: raster text,
columns, rules and images are the very bitmaps `ReceiptRenderer` sends in raster mode; QR codes
and barcodes, which the printer draws itself from native commands, are drawn here to the same
size (module size and bar height in dots), so what the resident sees is what comes out.
"""

from __future__ import annotations

import io
import unicodedata
from collections.abc import Mapping, Sequence
from typing import Any

from PIL import Image, ImageDraw

from drivers.printer.render import DocumentError, ReceiptRenderer

FEED_DOTS = 30  # one ESC d line at the default line spacing
QR_BORDER = 2


def _qr_image(r: ReceiptRenderer, block: Mapping[str, Any]) -> Image.Image:
    import qrcode

    data = str(block.get("data", ""))
    if not data:
        raise DocumentError("qr block without data", "data")
    qr = qrcode.QRCode(box_size=int(block.get("size", 6)), border=QR_BORDER)
    qr.add_data(data)
    qr.make(fit=True)
    code = qr.make_image().get_image().convert("1")
    return _placed(r, code, str(block.get("align", "center")))


def _barcode_image(r: ReceiptRenderer, block: Mapping[str, Any]) -> Image.Image:
    import barcode

    symbology = str(block.get("symbology", "CODE128")).lower().replace("_", "")
    data = str(block.get("data", ""))
    try:
        modules = barcode.get(symbology, data).build()[0]
    except Exception as exc:  # python-barcode raises its own error types for bad data
        raise DocumentError(f"barcode data: {exc}", "data") from None
    width, height = 2, int(block.get("height", 80))  # GS w 2, GS h: as the renderer sends them
    text_h = 26
    code = Image.new("1", (len(modules) * width, height + text_h), 1)
    draw = ImageDraw.Draw(code)
    for i, bit in enumerate(modules):
        if bit == "1":
            draw.rectangle((i * width, 0, i * width + width - 1, height - 1), fill=0)
    font = r.fonts.get(False, 20)
    draw.text(((code.width - font.getlength(data)) / 2, height + 2), data, font=font, fill=0)
    if code.width > r.width:
        code = code.resize((r.width, code.height))
    return _placed(r, code, "center")


def _placed(r: ReceiptRenderer, img: Image.Image, align: str) -> Image.Image:
    line = Image.new("1", (r.width, img.height), 1)
    x = {"left": 0, "center": (r.width - img.width) // 2, "right": r.width - img.width}.get(align, 0)
    line.paste(img, (max(0, x), 0))
    return line


def _cut_image(r: ReceiptRenderer) -> Image.Image:
    img = Image.new("1", (r.width, 24), 1)
    draw = ImageDraw.Draw(img)
    for x in range(0, r.width, 16):
        draw.line((x, 12, x + 8, 12), fill=0)
    return img


def render_preview(blocks: Sequence[Mapping[str, Any]], paper_mm: int = 80,
                   where: str = "params.document.blocks") -> Image.Image:
    """The whole receipt as one 1-bit image, top to bottom."""
    r = ReceiptRenderer(paper_mm, native_qr=False)
    parts: list[Image.Image] = []
    for index, block in enumerate(blocks):
        kind = block.get("type")
        try:
            if kind == "text":
                parts.append(r._text_image(unicodedata.normalize("NFC", str(block.get("text", ""))),
                                           bool(block.get("bold")), int(block.get("size", 1)),
                                           str(block.get("align", "left"))))
            elif kind == "columns":
                parts.append(r._columns_image(unicodedata.normalize("NFC", str(block["label"])),
                                              unicodedata.normalize("NFC", str(block["value"])),
                                              bool(block.get("bold")), int(block.get("size", 1))))
            elif kind == "rule":
                parts.append(r._rule_image(str(block.get("style", "solid"))))
            elif kind == "image":
                parts.append(r._png_image(str(block.get("png", "")), str(block.get("align", "left"))))
            elif kind == "qr":
                parts.append(_qr_image(r, block))
            elif kind == "barcode":
                parts.append(_barcode_image(r, block))
            elif kind == "feed":
                parts.append(Image.new("1", (r.width, FEED_DOTS * max(0, int(block.get("lines", 1)))), 1))
            elif kind == "cut":
                parts.append(_cut_image(r))
            else:
                raise DocumentError(f"unknown block type {kind!r}", "type")
        except DocumentError as exc:
            at = f"{where}[{index}]"
            raise DocumentError(f"{at}: {exc}", f"{at}.{exc.field}" if exc.field else at) from None
    height = sum(p.height for p in parts) or 1
    page = Image.new("1", (r.width, height), 1)
    y = 0
    for p in parts:
        page.paste(p, (0, y))
        y += p.height
    return page


def preview_png(blocks: Sequence[Mapping[str, Any]], paper_mm: int = 80,
                where: str = "params.document.blocks") -> tuple[bytes, int, int]:
    img = render_preview(blocks, paper_mm, where)
    buf = io.BytesIO()
    img.save(buf, "PNG", optimize=True)
    return buf.getvalue(), img.width, img.height
