"""The thermal printer: how much of a 115200-baud serial line a raster receipt gets, and how long
drawing a Vietnamese receipt takes.

    python bench/printer.py [--runs 5] [--baudrate 115200]

Throughput: the simulated printer (`python -m simulators.escpos_printer`, its own process) serves
a pty that it reads at the line rate (10 bit times a byte: start, 8 data, stop), the way a UART
delivers bytes. The real driver (drivers/printer, pyserial set-up, XON/XOFF, status checks before
the job, watching automatic status back, `GS r 1` at the end) prints a pre-rendered payment
receipt (raster Vietnamese + native QR + barcode) over it; the time runs from the job's start
to the printer's answer that it has printed everything. Baselines in the same run: the line rate
itself, and the same bytes written raw to the pty with no driver (which shows what the
simulator's pacing allows — it must not beat the line rate).

Render: the driver's renderer drawing the same receipt to ESC/POS bytes (1-bit raster of every
line with DejaVu Sans, NFC), median of --runs, against the same receipt with the tone marks
taken off (what a code-page printer would be sent as text) as the in-run baseline.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import pathlib
import statistics
import subprocess
import sys
import tempfile
import time
import unicodedata
from typing import Any

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import serial  # noqa: E402
from benchjson import emit, figure  # noqa: E402

from drivers.base import OperationContext  # noqa: E402
from drivers.printer.documents import payment_receipt  # noqa: E402
from drivers.printer.driver import PrinterDriver  # noqa: E402
from drivers.printer.render import ReceiptRenderer  # noqa: E402
from protocols import vietqr  # noqa: E402

RECEIPT = {"amount": 150000, "transaction_id": "TX20261203091500", "method": "VietQR",
           "time": "03/12/2026 09:15",
           "items": [{"label": "Lệ phí cấp đổi thẻ Căn cước công dân", "amount": 100000},
                     {"label": "Phí chuyển phát nhanh tận nhà", "amount": 50000}],
           "vietqr": vietqr.build("970436", "0011004321", amount=150000, bill_number="HS123")}


def strip_marks(blocks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    def bare(s: str) -> str:
        s = unicodedata.normalize("NFD", s).replace("đ", "d").replace("Đ", "D")
        return "".join(c for c in s if not unicodedata.combining(c))
    return [{k: bare(v) if isinstance(v, str) and k in ("text", "label", "value") else v
             for k, v in b.items()} for b in blocks]


def time_render(renderer: ReceiptRenderer, blocks: list[dict[str, Any]], runs: int) -> float:
    renderer.render(blocks)  # warm-up: fonts loaded, caches filled
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        renderer.render(blocks)
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1000


class SimProcess:
    def __init__(self, workdir: pathlib.Path, baudrate: int) -> None:
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "simulators.escpos_printer", "--dir", str(workdir),
             "--baudrate", str(baudrate)], cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().split()  # pty PATH tcp HOST:PORT jobs DIR
        if len(line) < 2 or line[0] != "pty":
            self.stop()
            raise RuntimeError(f"simulator did not start: {line}")
        self.pty = line[1]

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def raw_write(path: str, data: bytes, baudrate: int) -> float:
    """The bytes and a GS r 1 written straight to the pty; seconds until the printer answers."""
    with serial.Serial(path, baudrate=baudrate, timeout=30, xonxoff=True) as port:
        port.reset_input_buffer()
        t0 = time.perf_counter()
        port.write(data + b"\x1dr\x01")
        while True:
            b = port.read(1)
            if not b:
                raise RuntimeError("no answer to GS r 1")
            if b[0] & 0x90 == 0 and b[0] not in (0x11, 0x13):
                return time.perf_counter() - t0


async def driver_prints(path: str, data: bytes, baudrate: int, runs: int,
                        state: pathlib.Path) -> list[float]:
    changed = asyncio.Event()
    driver = PrinterDriver("printer0", {"transport": "serial", "port": path, "baudrate": baudrate,
                                        "flow_control": "xonxoff", "status_interval_s": 30},
                           lambda topic, device, data: changed.set())
    driver.state_dir = state
    task = asyncio.create_task(driver.run())
    try:
        while str(driver.state) != "online":
            changed.clear()
            await asyncio.wait_for(changed.wait(), 30)
        times = []
        for i in range(runs + 1):  # the first is a warm-up
            t0 = time.perf_counter()
            async with driver._print_lock:
                result = await driver._print_once(f"bench-{i}-{time.time()}", data, OperationContext())
            if result["status"] != "printed":
                raise RuntimeError(f"bench job failed: {result}")
            if i:
                times.append(time.perf_counter() - t0)
        return times
    finally:
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            pass


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--baudrate", type=int, default=115200)
    args = ap.parse_args()

    blocks = payment_receipt(RECEIPT)
    renderer = ReceiptRenderer(80)
    vi_ms = time_render(renderer, blocks, max(args.runs, 20))
    bare_ms = time_render(renderer, strip_marks(blocks), max(args.runs, 20))
    data = renderer.render(blocks)
    raster_rows = renderer.raster_rows
    line_rate = args.baudrate / 10  # bytes/s: start + 8 data + stop bits

    tmp = pathlib.Path(tempfile.mkdtemp(prefix="bench-printer-"))
    sim = SimProcess(tmp / "sim", args.baudrate)
    try:
        raw = [raw_write(sim.pty, data, args.baudrate) for _ in range(args.runs)]
        drv = asyncio.run(driver_prints(sim.pty, data, args.baudrate, args.runs, tmp / "state"))
    finally:
        sim.stop()
    raw_s, drv_s = statistics.median(raw), statistics.median(drv)
    raw_rate, drv_rate = len(data) / raw_s, len(data) / drv_s

    print(f"receipt: payment receipt, 80 mm, {len(data)} bytes of ESC/POS ({raster_rows} raster rows "
          f"+ native QR + barcode); line {args.baudrate} baud = {line_rate:.0f} bytes/s; "
          f"median of {args.runs} runs")
    print(f"  line minimum   {len(data) / line_rate * 1000:8.0f} ms")
    print(f"  raw pty write  {raw_s * 1000:8.0f} ms  {raw_rate:7.0f} bytes/s")
    print(f"  driver job     {drv_s * 1000:8.0f} ms  {drv_rate:7.0f} bytes/s  "
          "(status check, send with ASB watched, GS r 1)")
    print(f"render: Vietnamese {vi_ms:.1f} ms, same receipt without tone marks {bare_ms:.1f} ms")
    print()
    figures = [
        figure("driver throughput / line rate (raster receipt, pty)", drv_rate / line_rate * 100, "%",
               "≥ 90"),
        figure("raw pty write / line rate (simulator pacing; must not exceed 100)",
               raw_rate / line_rate * 100, "%", "≤ 100.5"),
        figure("driver throughput / raw pty write", drv_rate / raw_rate, "x"),
        figure("render time, Vietnamese payment receipt (80 mm)", vi_ms, "ms", "< 50"),
        figure("render time, Vietnamese / without tone marks", vi_ms / bare_ms, "x"),
    ]
    for f in figures:
        target = f" target {f['target']}" if f["target"] else ""
        verdict = "" if f["ok"] is None else ("  ok" if f["ok"] else "  MISSED")
        print(f"{f['name']:66} {f['value']:8.2f} {f['unit']:2}{target}{verdict}")
    emit("printer", figures)


if __name__ == "__main__":
    main()
