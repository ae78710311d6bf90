"""A full CCCD read (PACE with the CAN, DG1 + DG13 + DG2 + EF.SOD, passive authentication) by the
real driver (drivers/idcard) against the simulated card (simulators/cccd_card) through the real
pcscd + vpcd, over a modelled contactless link; the same read with fixed 223-byte blocks (what
common readers do) measured in the same run as the baseline.

    python bench/idcard.py [--runs 5] [--latency-ms 5] [--bitrate 424000] [--active-auth]

The card runs in its own process on vpcd reader slot 1 (port 35964, "Virtual PCD 00 01"; slot 0
belongs to the tests and `make run`). pcscd is one per machine: a running one is reused, else
started here and stopped at the end (left running if a card is then on slot 0, i.e. someone
else came to use it meanwhile).

Prints APDUs, bytes and wall time (median of --runs) for both reads, the APDU ratio, the read's
time against the link's physical minimum, and PACE's own computation time (a read on a link
with no latency and no bit rate). By default the card has no DG15, so the read is exactly the
one above; --active-auth keeps DG15, and the driver then also reads DG14 + DG15 and runs
INTERNAL AUTHENTICATE.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import pathlib
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Mapping
from typing import Any

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from drivers.base import DeviceState  # noqa: E402
from drivers.idcard import IdCardDriver  # noqa: E402
from protocols.emrtd import access_key  # noqa: E402
from simulators.cccd_card.card import Pcscd, reader_name  # noqa: E402
from simulators.cccd_card.document import DEFAULT_CITIZEN  # noqa: E402
from simulators.control import acontrol  # noqa: E402

sys.path.insert(0, str(ROOT / "bench"))
from benchjson import emit, figure  # noqa: E402

VPCD_PORT = 35964  # reader slot 1; never 35963 (slot 0: another engineer's tests)
READER = "Virtual PCD 00 01"
WANTED: list[int | str] = [1, 13, 2, "SOD"]
CAN = DEFAULT_CITIZEN["id_number"][-6:]

# The card part in its own process: start_part with our options, its control actions on a Unix
# socket (simulators.station's NDJSON protocol), stop when stdin closes.
CARD_SERVER = textwrap.dedent("""
    import asyncio, json, pathlib, sys
    sys.path.insert(0, sys.argv[1])
    from simulators.cccd_card.card import start_part
    from simulators.station import ControlServer
    async def main():
        part = await start_part(pathlib.Path(sys.argv[2]), json.loads(sys.argv[4]))
        server = await asyncio.start_unix_server(ControlServer([part]).handle, path=sys.argv[3])
        print(json.dumps(part.devices["idcard0"]), flush=True)
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, sys.stdin.read)
        server.close()
        await part.stop()
    asyncio.run(main())
""")


def minimal_apdus(active_auth: bool) -> int:
    """The fewest APDUs this read can take (ICAO 9303-10 §4 inspection procedure, 9303-11 §4.4):
    1  READ BINARY of EF.CardAccess by short file identifier 1C (selects and reads at once)
    1  MSE:Set AT (PACE protocol and password reference)
    4  GENERAL AUTHENTICATE (nonce, mapping, key agreement, tokens)
    1  SELECT of the eMRTD application under secure messaging
    1  READ BINARY by SFI with extended Le (the whole file) for each of DG1, DG13, DG2, EF.SOD
    +3 with active authentication: DG14, DG15, INTERNAL AUTHENTICATE."""
    return 1 + 1 + 4 + 1 + len(WANTED) + (3 if active_auth else 0)


def physical_minimum_s(nbytes: int, apdus: int, latency_ms: float, bitrate: float) -> float:
    """The link's physical minimum for the job, in the simulator's own link model (card.py:
    every APDU costs latency + (command + response bytes) * 8 / bitrate):
        minimum = apdus_min * latency + bytes * 8 / bitrate
    with apdus_min from minimal_apdus() and bytes = what the extended-length read transferred
    (command + response APDUs, both directions: the file contents plus SM wrapping, which no
    reader can avoid). ISO 14443 framing (CRC, block headers, frame chaining) is not modelled,
    on either side of the ratio."""
    return apdus * latency_ms / 1000.0 + (nbytes * 8 / bitrate if bitrate else 0.0)


class Card:
    """The card process and its control socket."""

    def __init__(self, tmp: pathlib.Path, options: Mapping[str, Any]) -> None:
        self.sock = tmp / "card-control.sock"
        self.proc = subprocess.Popen([sys.executable, "-c", CARD_SERVER, str(ROOT), str(tmp / "card"),
                                      str(self.sock), json.dumps(dict(options))],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, cwd=ROOT)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"card process exited with {self.proc.wait()}")
        self.device: dict[str, Any] = json.loads(line)

    async def control(self, action: str, **args: Any) -> dict[str, Any]:
        reply = dict(await acontrol(self.sock, "cccd_card", action, **args))
        if not reply.get("ok"):
            raise RuntimeError(f"card control {action}: {reply.get('error')}")
        return reply

    def stop(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.terminate()
            self.proc.wait(10)


class Reader:
    """One driver instance (its own per-ATR memory), running as the daemon would run it."""

    def __init__(self, device: Mapping[str, Any], **options: Any) -> None:
        self.driver = IdCardDriver("idcard0", {**device, **options}, lambda *_: None)
        self.task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self.task = asyncio.create_task(self.driver.run())
        deadline = time.monotonic() + 20
        while not (self.driver.state == DeviceState.ONLINE and self.driver.card_present):
            if time.monotonic() > deadline:
                raise RuntimeError(f"driver not online with a card: {self.driver.status()}")
            await asyncio.sleep(0.02)

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            try:
                await self.task
            except asyncio.CancelledError:
                pass

    async def read(self, card: Card) -> dict[str, Any]:
        """One read: card-side APDUs/bytes, wall ms, PACE figures."""
        marks: dict[str, float] = {}

        def progress(data: Mapping[str, Any]) -> None:
            marks.setdefault(str(data.get("step")), time.perf_counter())

        await card.control("reset_stats")
        t0 = time.perf_counter()
        key = access_key.from_params({"can": CAN})
        result = await self.driver.read_card(key, list(WANTED), True, progress)
        wall = time.perf_counter() - t0
        stats = await card.control("stats")
        valid = result["authenticity"]["status"] == "valid"
        if not valid or result.get("id_number") != DEFAULT_CITIZEN["id_number"]:
            raise RuntimeError(f"bad read: {result['authenticity']} {result.get('datagroups')}")
        if (stats["apdus"], stats["bytes"]) != (result["stats"]["apdus"], result["stats"]["bytes"]):
            raise RuntimeError(f"driver and card disagree: {result['stats']} vs {stats}")
        return {"apdus": stats["apdus"], "bytes": stats["bytes"], "wall_ms": wall * 1000.0,
                "link_ms": stats["link_seconds"] * 1000.0,
                "extended": result["stats"]["extended_length"],
                "pace_compute_ms": result["stats"]["pace_compute_ms"],
                "access_ms": (marks["access_granted"] - marks["access"]) * 1000.0}


def median(rows: list[dict[str, Any]], key: str) -> float:
    return float(statistics.median(r[key] for r in rows))


def slot0_in_use() -> bool:
    """A vpcd card connected on slot 0 (port 35963): someone else is using pcscd."""
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = pathlib.Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            local, state = fields[1], fields[3]
            if state == "01" and local.rsplit(":", 1)[1] == f"{35963:04X}":
                return True
    return False


async def main_async(args: argparse.Namespace) -> None:
    assert reader_name(VPCD_PORT) == READER
    tmp = pathlib.Path(tempfile.mkdtemp(prefix="hal-bench-idcard-", dir="/tmp"))
    pcscd = Pcscd()
    started = await asyncio.to_thread(pcscd.ensure)
    card: Card | None = None
    readers: list[Reader] = []
    try:
        card = await asyncio.to_thread(Card, tmp, {"vpcd_port": VPCD_PORT, "latency_ms": args.latency_ms,
                                                   "bitrate": args.bitrate})
        if card.device["reader"] != READER:
            raise RuntimeError(f"card part wires reader {card.device['reader']!r}, expected {READER!r}")
        if not args.active_auth:
            await card.control("set_access", active_auth=False)
        device = {**card.device, "reader": READER}
        variants = {
            "extended (driver default)": Reader(device),
            "223-byte blocks": Reader(device, block_size=223, extended_length="never"),
        }
        readers = list(variants.values())
        for r in readers:
            await r.start()
        ext_name, blk_name = list(variants)

        # warm-up (imports, caches, the driver's per-ATR memory), then interleaved timed runs
        for r in readers:
            await r.read(card)
        results: dict[str, list[dict[str, Any]]] = {name: [] for name in variants}
        for _ in range(args.runs):
            for name, r in variants.items():
                results[name].append(await r.read(card))

        # PACE's own computation: the same read on a link with no latency and no bit rate
        await card.control("link", latency_ms=0, bitrate=0)
        bare = [await variants[ext_name].read(card) for _ in range(args.runs)]
        await card.control("link", latency_ms=args.latency_ms, bitrate=args.bitrate)

        print(f"link model: {args.latency_ms:g} ms per APDU turnaround, {args.bitrate / 1000:g} kbit/s; "
              f"reader {READER!r}; median of {args.runs} runs; "
              f"{'with' if args.active_auth else 'no'} active authentication")
        print()
        print(f"{'read':28} {'APDUs':>6} {'bytes':>7} {'link ms':>8} {'wall ms':>8} {'wall-link':>9}")
        for name, rows in results.items():
            apdus, nbytes = median(rows, "apdus"), median(rows, "bytes")
            link, wall = median(rows, "link_ms"), median(rows, "wall_ms")
            print(f"{name:28} {apdus:6.0f} {nbytes:7.0f} {link:8.1f} {wall:8.1f} {wall - link:9.1f}")
        ext, blk = results[ext_name], results[blk_name]
        if not all(r["extended"] for r in ext) or any(r["extended"] for r in blk):
            print("warning: a read did not use the intended block mode")

        n_min = minimal_apdus(args.active_auth)
        ext_bytes = int(median(ext, "bytes"))
        floor_ms = physical_minimum_s(ext_bytes, n_min, args.latency_ms, args.bitrate) * 1000.0
        ext_wall, blk_wall = median(ext, "wall_ms"), median(blk, "wall_ms")
        print()
        print(f"physical minimum: {n_min} APDUs x {args.latency_ms:g} ms + {ext_bytes} bytes x 8 / "
              f"{args.bitrate:g} bit/s = {floor_ms:.1f} ms")
        print(f"PACE computation (link 0 ms / unlimited, median of {args.runs}): "
              f"driver's own CPU {median(bare, 'pace_compute_ms'):.1f} ms; "
              f"'access' -> 'access_granted' {median(bare, 'access_ms'):.1f} ms "
              f"(+ card's side, pcscd/vpcd hops, EF.CardAccess, SELECT); "
              f"whole read {median(bare, 'wall_ms'):.1f} ms")
        print()
        table: list[tuple[str, float, str, str]] = [
            ("APDUs, 223-byte blocks / extended", median(blk, "apdus") / median(ext, "apdus"), "", "≥ 3"),
            ("wall time, 223-byte blocks / extended", blk_wall / ext_wall, "", ""),
            ("wall time, extended / physical minimum", ext_wall / floor_ms, "", "≤ 1.25"),
            ("wall time, 223-byte blocks / physical minimum", blk_wall / floor_ms, "", ""),
            ("PACE computation, driver's CPU", median(bare, "pace_compute_ms"), " ms", "< 150 ms"),
        ]
        for what, value, unit, target in table:
            shown = f"{value:6.1f}{unit}" if unit else f"{value:6.2f}"
            print(f"{what:48} {shown:10}" + (f" target {target}" if target else ""))
        emit("idcard", [figure(what, value, unit.strip() or "x", target or None)
                        for what, value, unit, target in table])
    finally:
        for r in readers:
            await r.stop()
        if card is not None:
            await asyncio.to_thread(card.stop)
        if started:
            if slot0_in_use():
                print(f"note: leaving pcscd (pid {pcscd.proc.pid if pcscd.proc else '?'}) running: "
                      "a card is connected on vpcd slot 0")
            else:
                await asyncio.to_thread(pcscd.stop)
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--latency-ms", type=float, default=5.0, help="per APDU turnaround")
    ap.add_argument("--bitrate", type=float, default=424000.0, help="link bit rate, bit/s")
    ap.add_argument("--active-auth", action="store_true", help="card with DG15: the read adds active auth")
    asyncio.run(main_async(ap.parse_args()))


if __name__ == "__main__":
    main()
