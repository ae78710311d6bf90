"""The simulated print head: executes ESC/POS commands onto a growing strip of paper and
turns each job into a PNG as it would come out of the printer.

Text is drawn from a monospaced ROM-like font cell by cell, the way a cheap printer does: a
combining tone mark sent under CP1258 lands in a cell of its own, which is exactly why the driver
renders Vietnamese to a raster instead.
"""

from __future__ import annotations

import pathlib
from typing import Any

import qrcode
from PIL import Image, ImageDraw, ImageFont

from protocols.escpos.commands import Command

FONT_DIR = pathlib.Path("/usr/share/fonts/truetype/dejavu")
CELL_W, CELL_H = 12, 24  # Font A
LINE_H = 30  # default line spacing (1/6 inch at 180 dpi, rounded to this head's dots)

# ESC t n -> Python codec for the code pages this printer has (no TCVN-3: Python lacks it).
CODEPAGES = {0: "cp437", 2: "cp850", 16: "cp1252", 17: "cp866", 19: "cp858", 46: "cp1251",
             52: "cp1258"}


class Paper:
    """One job's worth of printed paper, plus the text-mode state that shapes it."""

    def __init__(self, width_dots: int) -> None:
        self.width = width_dots
        self.rows: list[Image.Image] = []
        self.height = 0
        self.lines = 0  # printed lines, for "paper runs out after N lines"
        self.symbols: list[dict[str, Any]] = []  # QR / barcode contents, for tests
        self.text: list[str] = []
        self.raster_slices = 0
        self._font = ImageFont.truetype(str(FONT_DIR / "DejaVuSansMono.ttf"), 20)
        self._bold_font = ImageFont.truetype(str(FONT_DIR / "DejaVuSansMono-Bold.ttf"), 20)
        self.reset_modes()
        self._line: list[tuple[str, bool, int, int, bool]] = []
        self._qr: dict[int, bytes] = {}
        self._barcode = {"height": 162, "width": 3, "hri": 0}

    def reset_modes(self) -> None:
        self.bold = False
        self.underline = False
        self.align = 0
        self.scale_w = self.scale_h = 1
        self.codepage = 0
        self.line_spacing = LINE_H

    # --- output ------------------------------------------------------------------------
    def _add(self, img: Image.Image, lines: int = 1) -> None:
        self.rows.append(img)
        self.height += img.height
        self.lines += lines

    def _aligned(self, img: Image.Image) -> Image.Image:
        if img.width >= self.width:
            return img.crop((0, 0, self.width, img.height))
        strip = Image.new("1", (self.width, img.height), 1)
        x = {0: 0, 1: (self.width - img.width) // 2, 2: self.width - img.width}.get(self.align, 0)
        strip.paste(img, (x, 0))
        return strip

    def feed(self, dots: int, lines: int = 1) -> None:
        if dots > 0:
            self._add(Image.new("1", (self.width, dots), 1), lines)

    def flush_line(self, force: bool = False) -> None:
        """LF: print the line buffer (an empty line just feeds)."""
        if not self._line:
            if force:
                self.feed(self.line_spacing)
            return
        height = max(CELL_H * h for _, _, _, h, _ in self._line)
        width = sum(CELL_W * w * len(t) for t, _, w, _, _ in self._line)
        img = Image.new("L", (max(1, width), height), 255)
        draw = ImageDraw.Draw(img)
        x = 0
        for text, bold, w, h, underline in self._line:
            font = self._bold_font if bold else self._font
            for ch in text:
                cell = Image.new("L", (CELL_W, CELL_H), 255)
                ImageDraw.Draw(cell).text((0, 1), ch, font=font, fill=0)
                if w != 1 or h != 1:
                    cell = cell.resize((CELL_W * w, CELL_H * h))
                img.paste(cell, (x, height - CELL_H * h))
                x += CELL_W * w
            if underline:
                draw.line((x - CELL_W * w * len(text), height - 1, x, height - 1), fill=0, width=2)
        self.text.append("".join(t for t, *_ in self._line))
        self._line = []
        line = self._aligned(img.point(lambda v: 255 if v > 128 else 0).convert("1"))
        if self.line_spacing > height:
            pad = Image.new("1", (self.width, self.line_spacing), 1)
            pad.paste(line, (0, 0))
            line = pad
        self._add(line)

    # --- commands ----------------------------------------------------------------------
    def execute(self, cmd: Command) -> None:
        name = cmd.name
        if name == "text":
            codec = CODEPAGES.get(self.codepage, "cp437")
            text = (cmd.data or b"").decode(codec, "replace").replace("\ufffd", "?")
            self._line.append((text, self.bold, self.scale_w, self.scale_h, self.underline))
        elif name == "lf":
            self.flush_line(force=True)
        elif name == "init":
            self.flush_line()
            self.reset_modes()
        elif name == "bold":
            self.bold = bool((cmd.value or 0) & 1)
        elif name == "underline":
            self.underline = bool((cmd.value or 0) & 3)
        elif name == "align":
            self.align = (cmd.value or 0) % 48 if (cmd.value or 0) >= 48 else (cmd.value or 0)
        elif name == "size":
            v = cmd.value or 0
            self.scale_w, self.scale_h = ((v >> 4) & 7) + 1, (v & 7) + 1
        elif name == "print_mode":
            v = cmd.value or 0
            self.bold = bool(v & 0x08)
            self.scale_h = 2 if v & 0x10 else 1
            self.scale_w = 2 if v & 0x20 else 1
            self.underline = bool(v & 0x80)
        elif name == "codepage":
            self.codepage = cmd.value or 0
        elif name == "feed_lines":
            self.flush_line()
            for _ in range(cmd.value or 0):
                self.feed(self.line_spacing)
        elif name == "feed_dots":
            self.flush_line()
            self.feed(cmd.value or 0, lines=0)
        elif name == "line_spacing":
            self.line_spacing = cmd.value or 0
        elif name == "default_line_spacing":
            self.line_spacing = LINE_H
        elif name == "raster":
            self.flush_line()
            self._raster(cmd)
        elif name == "symbol":
            self._symbol(cmd)
        elif name == "barcode_height":
            self._barcode["height"] = cmd.value or 1
        elif name == "barcode_width":
            self._barcode["width"] = cmd.value or 2
        elif name == "hri_position":
            self._barcode["hri"] = cmd.value or 0
        elif name == "barcode":
            self.flush_line()
            self._draw_barcode(cmd)
        # Everything else (smoothing, fonts, status requests...) changes nothing on paper.

    def _raster(self, cmd: Command) -> None:
        width_bytes, height = cmd.args
        if width_bytes == 0 or height == 0:
            return
        # GS v 0 data: 1 = black; PIL "1" raw: 1 = white -> invert.
        data = bytes(b ^ 0xFF for b in cmd.data or b"")
        img = Image.frombytes("1", (width_bytes * 8, height), data)
        self.raster_slices += 1
        self._add(self._aligned(img), lines=max(1, round(height / LINE_H)))

    def _symbol(self, cmd: Command) -> None:
        cn, fn, body = cmd.args, cmd.value, cmd.data or b""
        if cn != 0x31:  # only QR
            return
        self._qr[fn or 0] = body
        if fn == 81:
            self.flush_line()
            content = self._qr.get(80, b"0")[1:].decode("utf-8", "replace")
            size = (self._qr.get(67) or b"\x03")[0]
            qr = qrcode.QRCode(box_size=max(1, size), border=1,
                               error_correction=qrcode.constants.ERROR_CORRECT_M)
            qr.add_data(content)
            qr.make(fit=True)
            img = qr.make_image().get_image().convert("1")
            self.symbols.append({"type": "qr", "data": content})
            self._add(self._aligned(img), lines=max(1, img.height // LINE_H))

    def _draw_barcode(self, cmd: Command) -> None:
        data = (cmd.data or b"").decode("ascii", "replace")
        if cmd.value == 73 and data[:1] == "{":  # CODE128 starts with its code set, e.g. "{B"
            data = data[2:]
        self.symbols.append({"type": "barcode", "system": cmd.value, "data": data})
        module, height = self._barcode["width"], self._barcode["height"]
        bits = "".join(f"{ord(c):08b}" for c in data)  # a stand-in pattern, not scannable
        img = Image.new("1", (max(1, len(bits) * module), height + CELL_H), 1)
        draw = ImageDraw.Draw(img)
        for i, bit in enumerate(bits):
            if bit == "1":
                draw.rectangle((i * module, 0, (i + 1) * module - 1, height - 1), fill=0)
        if self._barcode["hri"]:
            draw.text((0, height), data, font=self._font, fill=0)
        self._add(self._aligned(img), lines=max(1, img.height // LINE_H))

    def image(self) -> Image.Image:
        self.flush_line()
        out = Image.new("1", (self.width, max(1, self.height)), 1)
        y = 0
        for row in self.rows:
            out.paste(row, (0, y))
            y += row.height
        return out
