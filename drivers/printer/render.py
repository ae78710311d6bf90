"""Receipt documents -> ESC/POS bytes.

Vietnamese is the reason this is not a thin wrapper: most kiosk printers have no Vietnamese code
page, so in `raster` mode (the default) every text-like block (text, columns, rules, images) is
drawn with DejaVu Sans onto a 1-bit canvas the width of the paper and sent as GS v 0 bands.
QR codes, barcodes, feeds and the cut go through python-escpos as native commands. In `codepage`
mode text goes as CP1258 with tone marks split off, for printers that do combine them.
"""

from __future__ import annotations

import base64
import binascii
import io
import pathlib
import unicodedata
from collections.abc import Mapping, Sequence
from typing import Any

from escpos.printer import Dummy
from PIL import Image, ImageDraw, ImageFont

from protocols.escpos.raster import raster_bands

FONT_DIR = pathlib.Path("/usr/share/fonts/truetype/dejavu")  # Debian: fonts-dejavu-core
WIDTH_DOTS = {58: 384, 80: 576}  # 203 dpi heads: 48 mm / 72 mm printable
BASE_PX = 24  # body text height in dots (≈3 mm)
MARGIN = 4
TONE_MARKS = "\u0300\u0301\u0303\u0309\u0323"  # the five CP1258 combining tones

ALIGN = {"left": 0, "center": 1, "right": 2}
BARCODES = {"CODE128": "CODE128", "CODE39": "CODE39", "EAN13": "EAN13", "EAN8": "EAN8",
            "UPC-A": "UPC-A", "ITF": "ITF", "CODABAR": "NW7"}


class DocumentError(ValueError):
    """A document that cannot be printed (bad image, bad barcode data…): the caller's fault.
    `field` names the offending part of the params (`params.document.blocks[3].png`)."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


def format_vnd(amount: int | float) -> str:
    """150000 -> '150.000 ₫' (Vietnamese grouping with dots)."""
    return f"{round(amount):,}".replace(",", ".") + " ₫"


def cp1258_text(text: str) -> str:
    """NFC text -> the form CP1258 can encode: precomposed base letters (â, ơ, đ…) followed by
    a separate combining tone mark. Precomposed toned letters (ộ) would print '?'."""
    out = []
    for ch in unicodedata.normalize("NFC", text):
        parts = unicodedata.normalize("NFD", ch)
        tones = "".join(c for c in parts if c in TONE_MARKS)
        base = unicodedata.normalize("NFC", "".join(c for c in parts if c not in TONE_MARKS))
        out.append(base + tones)
    return "".join(out)


class Fonts:
    """DejaVu Sans faces by (bold, size), loaded once per renderer."""

    def __init__(self, font_dir: pathlib.Path = FONT_DIR) -> None:
        self.font_dir = font_dir
        self._cache: dict[tuple[bool, int], ImageFont.FreeTypeFont] = {}

    def get(self, bold: bool, px: int) -> ImageFont.FreeTypeFont:
        key = (bold, px)
        font = self._cache.get(key)
        if font is None:
            name = "DejaVuSans-Bold.ttf" if bold else "DejaVuSans.ttf"
            font = ImageFont.truetype(str(self.font_dir / name), px)
            self._cache[key] = font
        return font


class Canvas:
    """A strip of paper being drawn on: 1-bit images stacked top to bottom."""

    def __init__(self, width: int) -> None:
        self.width = width
        self.parts: list[Image.Image] = []

    def add(self, img: Image.Image) -> None:
        self.parts.append(img)

    def __bool__(self) -> bool:
        return bool(self.parts)

    def take(self) -> Image.Image:
        height = sum(p.height for p in self.parts)
        out = Image.new("1", (self.width, height), 1)
        y = 0
        for part in self.parts:
            out.paste(part, (0, y))
            y += part.height
        self.parts = []
        return out


class ReceiptRenderer:
    def __init__(self, paper_mm: int = 80, text_mode: str = "raster", codepage: str = "CP1258",
                 font_dir: pathlib.Path = FONT_DIR, native_qr: bool = True) -> None:
        self.width = WIDTH_DOTS.get(paper_mm, 576)
        self.text_mode = text_mode
        self.codepage = codepage
        self.native_qr = native_qr
        self.fonts = Fonts(font_dir)
        self.raster_rows = 0

    # --- text drawing ----------------------------------------------------------------------
    def _wrap(self, text: str, font: ImageFont.FreeTypeFont, width: int) -> list[str]:
        lines: list[str] = []
        for paragraph in text.split("\n"):
            words = paragraph.split(" ")
            line = ""
            for word in words:
                trial = f"{line} {word}" if line else word
                if font.getlength(trial) <= width or not line:
                    line = trial
                else:
                    lines.append(line)
                    line = word
                while font.getlength(line) > width and len(line) > 1:
                    # A single word wider than the paper: break it by characters.
                    cut = len(line)
                    while cut > 1 and font.getlength(line[:cut]) > width:
                        cut -= 1
                    lines.append(line[:cut])
                    line = line[cut:]
            lines.append(line)
        return lines

    def _line_height(self, font: ImageFont.FreeTypeFont) -> int:
        ascent, descent = font.getmetrics()
        # Stacked Vietnamese marks (Ẫ, Ầ) rise above the font's ascent: leave room on top.
        return int(ascent + descent + font.size // 6 + 2)  # font.size is typed float; it is our int

    def _text_image(self, text: str, bold: bool, size: int, align: str) -> Image.Image:
        font = self.fonts.get(bold, BASE_PX * size)
        usable = self.width - 2 * MARGIN
        lines = self._wrap(text, font, usable)
        lh = self._line_height(font)
        top = font.size // 6 + 1
        img = Image.new("1", (self.width, lh * len(lines)), 1)
        draw = ImageDraw.Draw(img)
        for i, line in enumerate(lines):
            w = font.getlength(line)
            x = {"left": MARGIN, "center": (self.width - w) / 2,
                 "right": self.width - MARGIN - w}.get(align, MARGIN)
            draw.text((x, i * lh + top), line, font=font, fill=0)
        return img

    def _columns_image(self, label: str, value: str, bold: bool, size: int) -> Image.Image:
        font = self.fonts.get(bold, BASE_PX * size)
        usable = self.width - 2 * MARGIN
        value_w = font.getlength(value)
        gap = font.getlength("  ")
        label_lines = self._wrap(label, font, max(usable // 3, int(usable - value_w - gap)))
        lh = self._line_height(font)
        top = font.size // 6 + 1
        img = Image.new("1", (self.width, lh * len(label_lines)), 1)
        draw = ImageDraw.Draw(img)
        for i, line in enumerate(label_lines):
            draw.text((MARGIN, i * lh + top), line, font=font, fill=0)
        last = (len(label_lines) - 1) * lh + top
        draw.text((self.width - MARGIN - value_w, last), value, font=font, fill=0)
        return img

    def _rule_image(self, style: str) -> Image.Image:
        img = Image.new("1", (self.width, 14), 1)
        draw = ImageDraw.Draw(img)
        if style == "dashed":
            for x in range(MARGIN, self.width - MARGIN, 12):
                draw.rectangle((x, 6, min(x + 6, self.width - MARGIN), 7), fill=0)
        else:
            draw.rectangle((MARGIN, 6, self.width - MARGIN, 7), fill=0)
        return img

    def _png_image(self, data: str, align: str) -> Image.Image:
        try:
            src: Image.Image = Image.open(io.BytesIO(base64.b64decode(data, validate=True)))
            src.load()
        except (binascii.Error, ValueError, OSError) as exc:
            raise DocumentError(f"image block: not a base64 PNG ({exc})", "png") from None
        if src.width > self.width:
            src = src.resize((self.width, max(1, src.height * self.width // src.width)))
        if src.mode in ("RGBA", "LA", "P"):
            src = src.convert("RGBA")
            bg = Image.new("RGBA", src.size, (255, 255, 255, 255))
            bg.alpha_composite(src)
            src = bg
        mono = src.convert("L").convert("1")  # Floyd-Steinberg dithering for photos and logos
        img = Image.new("1", (self.width, mono.height), 1)
        x = {"left": 0, "center": (self.width - mono.width) // 2,
             "right": self.width - mono.width}.get(align, 0)
        img.paste(mono, (x, 0))
        return img

    # --- document ----------------------------------------------------------------------------
    def _flush(self, canvas: Canvas, out: Dummy) -> None:
        if not canvas:
            return
        img = canvas.take()
        self.raster_rows += img.height
        # PIL "1" packs 1 = white; ESC/POS wants 1 = black.
        data = bytes(b ^ 0xFF for b in img.tobytes())
        for band in raster_bands(img.width // 8, img.height, data):
            out._raw(band)

    def render(self, blocks: Sequence[Mapping[str, Any]], where: str = "params.document.blocks") -> bytes:
        out = Dummy()
        out.hw("INIT")
        if self.text_mode == "codepage":
            # python-escpos does not re-send ESC t after ESC @: select the code page ourselves.
            out.charcode(self.codepage)
            out._raw(b"\x1bt" + bytes((_codepage_number(self.codepage),)))
        canvas = Canvas(self.width)
        self.raster_rows = 0
        for index, block in enumerate(blocks):
            try:
                self._block(block, out, canvas)
            except DocumentError as exc:
                at = f"{where}[{index}]"
                raise DocumentError(f"{at}: {exc}", f"{at}.{exc.field}" if exc.field else at) from None
        self._flush(canvas, out)
        if not blocks or blocks[-1].get("type") != "cut":
            out.cut()
        return out.output

    def _block(self, block: Mapping[str, Any], out: Dummy, canvas: Canvas) -> None:
        kind = block.get("type")
        align = str(block.get("align", "left"))
        if kind in ("text", "columns", "rule") and self.text_mode == "codepage":
            self._flush(canvas, out)
            self._codepage_block(block, out)
        elif kind == "text":
            text = unicodedata.normalize("NFC", str(block.get("text", "")))
            canvas.add(self._text_image(text, bool(block.get("bold")),
                                        int(block.get("size", 1)), align))
        elif kind == "columns":
            canvas.add(self._columns_image(unicodedata.normalize("NFC", str(block["label"])),
                                           unicodedata.normalize("NFC", str(block["value"])),
                                           bool(block.get("bold")), int(block.get("size", 1))))
        elif kind == "rule":
            canvas.add(self._rule_image(str(block.get("style", "solid"))))
        elif kind == "image":
            canvas.add(self._png_image(str(block.get("png", "")), align))
        elif kind == "feed":
            self._flush(canvas, out)
            out._raw(b"\x1bd" + bytes((max(0, min(255, int(block.get("lines", 1)))),)))
        elif kind == "qr":
            self._flush(canvas, out)
            self._qr(block, out, canvas)
        elif kind == "barcode":
            self._flush(canvas, out)
            self._barcode(block, out)
        elif kind == "cut":
            self._flush(canvas, out)
            out.cut(mode="PART" if block.get("partial") else "FULL")
        else:
            raise DocumentError(f"unknown block type {kind!r}", "type")

    def _qr(self, block: Mapping[str, Any], out: Dummy, canvas: Canvas) -> None:
        data = str(block.get("data", ""))
        if not data:
            raise DocumentError("qr block without data", "data")
        size = int(block.get("size", 6))
        align = ALIGN.get(str(block.get("align", "center")), 1)
        if self.native_qr:
            out._raw(b"\x1ba" + bytes((align,)))
            out.qr(data, size=size, native=True)
            out._raw(b"\n\x1ba\x00")
        else:
            import qrcode

            qr = qrcode.QRCode(box_size=size, border=2)
            qr.add_data(data)
            qr.make(fit=True)
            img = qr.make_image().get_image().convert("1")
            buf = io.BytesIO()
            img.save(buf, "PNG")
            canvas.add(self._png_image(base64.b64encode(buf.getvalue()).decode(),
                                       str(block.get("align", "center"))))
            self._flush(canvas, out)

    def _barcode(self, block: Mapping[str, Any], out: Dummy) -> None:
        symbology = BARCODES.get(str(block.get("symbology", "CODE128")).upper())
        if symbology is None:
            raise DocumentError(f"unknown barcode symbology {block.get('symbology')!r}", "symbology")
        data = str(block.get("data", ""))
        code = "{B" + data if symbology == "CODE128" else data
        try:
            # The hardware path of Escpos.barcode(), minus its print() to stdout.
            out._hw_barcode(code, symbology, height=int(block.get("height", 80)), width=2,
                            pos="BELOW", font="A", align_ct=True, function_type="B")
        except Exception as exc:  # python-escpos raises its own BarcodeCodeError etc.
            raise DocumentError(f"barcode data: {exc}", "data") from None
        out._raw(b"\n\x1ba\x00")

    def _codepage_block(self, block: Mapping[str, Any], out: Dummy) -> None:
        kind = block.get("type")
        cols = 48 if self.width >= 576 else 32
        if kind == "rule":
            line = "-" * cols
            out._raw(b"\x1ba\x00")
        elif kind == "columns":
            label, value = str(block["label"]), str(block["value"])
            pad = max(1, cols - len(label) - len(value))
            line = label + " " * pad + value
            out._raw(b"\x1ba\x00")
        else:
            line = str(block.get("text", ""))
            out._raw(b"\x1ba" + bytes((ALIGN.get(str(block.get("align", "left")), 0),)))
        bold = bool(block.get("bold"))
        size = int(block.get("size", 1))
        out._raw(b"\x1bE" + (b"\x01" if bold else b"\x00"))
        out._raw(b"\x1d!" + bytes((((size - 1) << 4) | (size - 1),)))
        encoded = cp1258_text(line).encode(_python_codec(self.codepage), "replace")
        out._raw(encoded + b"\n")
        out._raw(b"\x1bE\x00\x1d!\x00\x1ba\x00")


def _codepage_number(name: str) -> int:
    return {"CP1258": 52, "CP1252": 16, "CP437": 0}.get(name.upper(), 52)


def _python_codec(name: str) -> str:
    return {"CP1258": "cp1258", "CP1252": "cp1252", "CP437": "cp437"}.get(name.upper(), "cp1258")


def render_image(blocks: Sequence[Mapping[str, Any]], paper_mm: int = 80) -> Image.Image:
    """The raster part of a document as one image (for previews and golden tests)."""
    r = ReceiptRenderer(paper_mm, native_qr=False)
    canvas = Canvas(r.width)
    for block in blocks:
        kind = block.get("type")
        if kind == "text":
            canvas.add(r._text_image(unicodedata.normalize("NFC", str(block.get("text", ""))),
                                     bool(block.get("bold")), int(block.get("size", 1)),
                                     str(block.get("align", "left"))))
        elif kind == "columns":
            canvas.add(r._columns_image(str(block["label"]), str(block["value"]),
                                        bool(block.get("bold")), int(block.get("size", 1))))
        elif kind == "rule":
            canvas.add(r._rule_image(str(block.get("style", "solid"))))
    return canvas.take()
