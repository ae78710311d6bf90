"""Simulated ESC/POS thermal printer (station part `escpos_printer`).

Serves one printer on a pty (a 115200-baud serial line with XON/XOFF; part option transport=usb
hands the daemon the same pty under `<workdir>/escpos_printer/dev/usb/lp0`, opened as a USB
printer class node) and on TCP (port-9100 style, free loopback port, transport=tcp), interprets
what the driver sends, answers DLE EOT and automatic status back, and renders each job to
`<workdir>/escpos_printer/jobs/job-NNNN.png`.

    python -m simulators.escpos_printer --dir run/printer

Control actions: paper_near_end / paper_out {after_lines}, paper_refill, cover_open,
cover_close, offline, online, cutter_error, clear_error, link_drop {after_bytes}, link_restore {reset},
small_buffer {size, print_rate}, stop_mode {mode: abort|resume}, one_way {on}, jobs, status.
"""

from __future__ import annotations

import pathlib
from collections.abc import Mapping
from typing import Any

from simulators.base import StationPart, UnknownAction, workdir_path
from simulators.escpos_printer.links import PtyLink, TcpLink
from simulators.escpos_printer.printer import SimulatedPrinter

ACTIONS = ("paper_near_end", "paper_out", "paper_refill", "cover_open", "cover_close", "offline",
           "online", "cutter_error", "clear_error", "link_drop", "link_restore", "small_buffer", "stop_mode",
           "one_way", "jobs", "status")


class PrinterSimulator:
    """One simulated printer reachable over both a pty and TCP."""

    def __init__(self, workdir: pathlib.Path, paper_mm: int = 80, baudrate: int = 115200,
                 buffer_size: int = 64 * 1024, print_rate: float | None = None) -> None:
        self.printer = SimulatedPrinter(workdir, paper_mm, buffer_size, print_rate)
        self.pty = PtyLink(self.printer, baudrate)
        self.tcp = TcpLink(self.printer)
        self.baudrate = baudrate
        self.paper_mm = paper_mm

    async def start(self) -> PrinterSimulator:
        self.printer.start()
        self.pty.start()
        await self.tcp.start()
        return self

    async def stop(self) -> None:
        await self.tcp.stop()
        await self.pty.stop()
        await self.printer.stop()

    async def control(self, action: str, args: Mapping[str, Any]) -> Mapping[str, Any]:
        try:
            return self.printer.control(action, dict(args))
        except KeyError:
            raise UnknownAction(action) from None

    def usb_node(self) -> pathlib.Path:
        """A stand-in for /dev/usb/lp0: a link to the pty's host end. A pty is a character
        device the driver opens as it opens usblp (no termios set-up, replies read back on the
        same fd); what it cannot show of a real usblp: no LPGETSTATUS ioctl, the kernel's USB
        flow control (writes blocking while the printer NAKs). One-way usblp printers, which
        never answer DLE EOT at all, are the `one_way` option."""
        node = self.printer.workdir / "dev" / "usb" / "lp0"
        node.parent.mkdir(parents=True, exist_ok=True)
        if node.is_symlink() or node.exists():
            node.unlink()
        node.symlink_to(self.pty.path)
        return node

    def device_table(self, transport: str = "serial") -> dict[str, Any]:
        if transport == "usb":
            return {"driver": "printer", "transport": "usb", "path": str(self.usb_node()),
                    "paper_mm": self.paper_mm}
        if transport == "tcp":
            return {"driver": "printer", "transport": "tcp", "host": "127.0.0.1",
                    "tcp_port": self.tcp.port, "paper_mm": self.paper_mm}
        return {"driver": "printer", "transport": "serial", "port": self.pty.path,
                "baudrate": self.baudrate, "flow_control": "xonxoff", "paper_mm": self.paper_mm}


async def start_part(workdir: pathlib.Path, options: Mapping[str, Any]) -> StationPart:
    sim = PrinterSimulator(workdir_path(workdir, "escpos_printer"),
                           paper_mm=int(options.get("paper_mm", 80)),
                           baudrate=int(options.get("baudrate", 115200)))
    sim.printer.control("stop_mode", {"mode": str(options.get("stop_mode", "abort"))})
    sim.printer.control("one_way", {"on": bool(options.get("one_way", False))})
    await sim.start()
    devices = {"printer0": sim.device_table(str(options.get("transport", "serial")))}
    return StationPart(name="escpos_printer", devices=devices, control=sim.control, stop=sim.stop,
                       actions=ACTIONS)
