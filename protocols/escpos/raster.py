"""GS v 0 raster commands from packed 1-bit rows, sliced into bands of at most 255 rows.

Why not python-escpos's `image()`: its bands default to 960 rows (garbage on printers whose
buffer takes 255), it prints to stdout when the profile has no width, and it re-converts an image
that is already 1-bit. Portable (DESIGN §6).
"""

from protocols.errors import ProtocolError

MAX_BAND_ROWS = 255


def raster_bands(width_bytes, height, data, band_rows=MAX_BAND_ROWS):
    """Packed rows (1 bit = black dot, MSB first) -> list of GS v 0 commands."""
    if width_bytes <= 0 or width_bytes > 0xFFFF or height < 0:
        raise ProtocolError("bad raster size")
    if len(data) != width_bytes * height:
        raise ProtocolError("raster data is %d bytes, not %d" % (len(data), width_bytes * height))
    if not 1 <= band_rows <= 0xFFFF:
        raise ProtocolError("bad band height")
    out = []
    row = 0
    while row < height:
        rows = min(band_rows, height - row)
        header = bytes((0x1D, 0x76, 0x30, 0, width_bytes & 0xFF, width_bytes >> 8,
                        rows & 0xFF, rows >> 8))
        out.append(header + bytes(data[row * width_bytes:(row + rows) * width_bytes]))
        row += rows
    return out
