"""Thermal receipt printer: ESC/POS over serial, USB printer class or TCP 9100."""

from drivers.printer.driver import PrinterDriver

DRIVER = PrinterDriver

__all__ = ["DRIVER", "PrinterDriver"]
