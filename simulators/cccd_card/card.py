"""The virtual card's transport and faults: vpcd's TCP protocol, a modelled contactless link,
card pulls, and the station part with its control actions.

vpcd protocol (card side): each message is a 2-byte big-endian length and a payload; a 1-byte
payload is a control code (0 power off, 1 power on, 2 reset, 4 get ATR -> reply the ATR); a
longer payload is a command APDU -> reply the response APDU.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import fcntl
import os
import pathlib
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Mapping
from typing import Any

from simulators.base import StationPart, UnknownAction, serve_until_signalled, workdir_path
from simulators.cccd_card.applet import Applet
from simulators.cccd_card.document import DEFAULT_CITIZEN, CardImage, Signer

VPCD_HOST = "127.0.0.1"
VPCD_PORT = 35963
READER_NAME = "Virtual PCD 00 00"


def reader_name(port: int) -> str:
    """vpcd serves reader slot n on port 35963 + n; pcscd names it "Virtual PCD 00 0n"."""
    return f"Virtual PCD 00 {port - VPCD_PORT:02X}"

PCSCD_SOCKET = pathlib.Path("/run/pcscd/pcscd.comm")

# ISO 7816-3 ATR of a contactless card as PC/SC readers synthesise it (PC/SC part 3 §3.1.3.2.3),
# historical bytes 80 73 00 00 40: compact TLV "card capabilities", third byte bit 7 = extended
# Lc/Le supported (ISO 7816-4 §12.1.1.9).
def _atr(historical: bytes) -> bytes:
    body = bytes((0x80 | len(historical), 0x80, 0x01)) + historical
    tck = 0
    for b in body:
        tck ^= b
    return b"\x3b" + body + bytes((tck,))


ATR_EXTENDED = _atr(bytes.fromhex("8073000040"))


class VirtualCard:
    """One card that can be inserted in (connected to) and pulled from the vpcd reader."""

    ACTIONS = ("insert", "remove", "pull_after", "link", "refuse_extended", "select_mf_quirk",
               "tamper", "unknown_csca", "clone", "set_citizen", "set_access", "stats", "reset_stats", "info",
               "reset")

    def __init__(self, workdir: pathlib.Path, options: Mapping[str, Any]) -> None:
        self.dir = workdir_path(workdir, "cccd_card/x").parent
        self.host = str(options.get("vpcd_host", VPCD_HOST))
        self.port = int(options.get("vpcd_port", VPCD_PORT))
        self.signer = Signer("Test Vietnam")
        self.foreign_signer = Signer("Unknown State")
        self.trust_store = self.dir / "csca.pem"
        self.signer.write_trust_store(self.trust_store)
        self.citizen = dict(DEFAULT_CITIZEN)
        self.citizen.update(options.get("citizen") or {})
        self.card_options: dict[str, Any] = {"pace": True, "parameter_id": 13,
                                             "pace_oid": "0.4.0.127.0.7.2.2.4.2.2", "active_auth": True}
        self.tamper_dg: int | None = None
        self.unknown_csca = False
        self.clone = False
        self.select_mf_quirk = False
        self.refuse_extended = False
        self.latency_ms = float(options.get("latency_ms", 0))
        self.bitrate = float(options.get("bitrate", 0))
        self.pull_after: int | None = None
        self.apdus = 0
        self.bytes = 0
        self.link_seconds = 0.0
        self.inserted = asyncio.Event()
        self._want_inserted = bool(options.get("inserted", True))
        self._task: asyncio.Task[None] | None = None
        self._writer: asyncio.StreamWriter | None = None
        self.connected = asyncio.Event()
        self.rebuild()

    def rebuild(self) -> None:
        signer = self.foreign_signer if self.unknown_csca else self.signer
        self.image = CardImage(self.citizen, signer, tamper_dg=self.tamper_dg, clone=self.clone,
                               **self.card_options)
        self.applet = Applet(self.image, select_mf_quirk=self.select_mf_quirk,
                             refuse_extended=self.refuse_extended)

    # --- vpcd link -------------------------------------------------------------------------
    async def start(self) -> None:
        self._task = asyncio.create_task(self._run())
        if self._want_inserted:
            await asyncio.wait_for(self.connected.wait(), 10)

    async def stop(self) -> None:
        self._want_inserted = False
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._close()

    def _close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        self.connected.clear()

    async def _run(self) -> None:
        while True:
            if not self._want_inserted:
                self.inserted.clear()
                await self.inserted.wait()
            try:
                reader, writer = await asyncio.open_connection(self.host, self.port)
            except OSError:
                await asyncio.sleep(0.1)  # vpcd (pcscd) not listening yet
                continue
            self._writer = writer
            self.applet.power_on()
            self.connected.set()
            try:
                await self._serve(reader, writer)
            except (ConnectionError, asyncio.IncompleteReadError):
                pass
            finally:
                self._close()
            if self._want_inserted:
                await asyncio.sleep(0.05)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while self._want_inserted:
            self._quickack(writer)
            header = await reader.readexactly(2)
            self._quickack(writer)
            payload = await reader.readexactly(int.from_bytes(header, "big"))
            if len(payload) == 1:
                code = payload[0]
                if code == 4:
                    await self._send(writer, ATR_EXTENDED)
                elif code in (0, 1, 2):
                    self.applet.power_on()
                continue
            if self.pull_after is not None:
                if self.pull_after <= 0:
                    self._pull()
                    return
                self.pull_after -= 1
            response = self.applet.process(payload)
            self.apdus += 1
            self.bytes += len(payload) + len(response)
            delay = self._link_delay(len(payload) + len(response))
            if delay:
                self.link_seconds += delay
                await asyncio.sleep(delay)
            await self._send(writer, response)

    @staticmethod
    def _quickack(writer: asyncio.StreamWriter) -> None:
        """vpcd sends a command's length and its body in two send()s: with Nagle on its side and
        delayed ACKs on ours, each APDU waited ~40 ms for our ACK of the length. Ask Linux for
        immediate ACKs; it is not sticky, so set again around every read."""
        sock = writer.get_extra_info("socket")
        if sock is not None and hasattr(socket, "TCP_QUICKACK"):
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK, 1)

    def _link_delay(self, nbytes: int) -> float:
        delay = self.latency_ms / 1000.0
        if self.bitrate:
            delay += nbytes * 8 / self.bitrate
        return delay

    @staticmethod
    async def _send(writer: asyncio.StreamWriter, payload: bytes) -> None:
        writer.write(len(payload).to_bytes(2, "big") + payload)
        await writer.drain()

    def _pull(self) -> None:
        self._want_inserted = False
        self.pull_after = None
        self._close()

    # --- control ---------------------------------------------------------------------------
    async def control(self, action: str, args: Mapping[str, Any]) -> Mapping[str, Any]:
        if action == "insert":
            self._want_inserted = True
            self.inserted.set()
            await asyncio.wait_for(self.connected.wait(), 10)
        elif action == "remove":
            self._pull()
        elif action == "pull_after":
            self.pull_after = int(args.get("apdus", 0))
        elif action == "link":
            self.latency_ms = float(args.get("latency_ms", 0))
            self.bitrate = float(args.get("bitrate", 0))
        elif action == "refuse_extended":
            self.refuse_extended = bool(args.get("on", True))
            self.applet.refuse_extended = self.refuse_extended
        elif action == "select_mf_quirk":
            self.select_mf_quirk = bool(args.get("on", True))
            self.applet.select_mf_quirk = self.select_mf_quirk
        elif action == "tamper":
            dg = args.get("dg", 13)
            self.tamper_dg = int(dg) if dg is not None else None
            self.rebuild()
        elif action == "unknown_csca":
            self.unknown_csca = bool(args.get("on", True))
            self.rebuild()
        elif action == "clone":  # genuine files on a chip without DG15's private key
            self.clone = bool(args.get("on", True))
            self.rebuild()
        elif action == "set_citizen":
            self.citizen = dict(DEFAULT_CITIZEN)
            self.citizen.update(args)
            self.citizen = {k: v for k, v in self.citizen.items() if v is not None}
            self.rebuild()
        elif action == "set_access":
            for key in ("pace", "parameter_id", "pace_oid", "active_auth"):
                if key in args:
                    self.card_options[key] = args[key]
            self.rebuild()
        elif action == "reset":  # every fault off, the default citizen, card on the reader
            self.citizen = dict(DEFAULT_CITIZEN)
            self.card_options = {"pace": True, "parameter_id": 13, "pace_oid": "0.4.0.127.0.7.2.2.4.2.2",
                                 "active_auth": True}
            self.tamper_dg, self.unknown_csca, self.clone = None, False, False
            self.select_mf_quirk = self.refuse_extended = False
            self.latency_ms, self.bitrate, self.pull_after = 0.0, 0.0, None
            self.apdus, self.bytes, self.link_seconds = 0, 0, 0.0
            self.rebuild()
            if not self.connected.is_set():
                self._want_inserted = True
                self.inserted.set()
                await asyncio.wait_for(self.connected.wait(), 10)
        elif action == "reset_stats":
            self.apdus, self.bytes, self.link_seconds = 0, 0, 0.0
            self.applet.extended_refused = 0
        elif action not in ("stats", "info"):
            raise UnknownAction(action)
        return {"apdus": self.apdus, "bytes": self.bytes, "link_seconds": self.link_seconds,
                "extended_refused": self.applet.extended_refused,
                "inserted": self.connected.is_set(), "access": self.applet.access}


# --- pcscd ----------------------------------------------------------------------------------
def pcscd_running() -> bool:
    if not PCSCD_SOCKET.exists():
        return False
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        try:
            s.connect(str(PCSCD_SOCKET))
        except OSError:
            return False
    return True


class Pcscd:
    """pcscd is one per machine: reuse a running one, else start `pcscd -f -a` and remember
    that we did, so only ours is ever stopped."""

    def __init__(self) -> None:
        self.proc: subprocess.Popen[bytes] | None = None

    def ensure(self, timeout: float = 10.0) -> bool:
        """Start pcscd if none runs; True if we started it."""
        if pcscd_running():
            return False
        exe = shutil.which("pcscd") or "/usr/sbin/pcscd"
        self.proc = subprocess.Popen([exe, "-f", "-a"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while not pcscd_running():
            if self.proc.poll() is not None:
                raise RuntimeError(f"pcscd exited with {self.proc.returncode}")
            if time.monotonic() > deadline:
                raise RuntimeError("pcscd did not start")
            time.sleep(0.05)
        return True

    def stop(self, users_lock: int | None = None) -> None:
        # Only when no other simulated card on this machine still uses it (they hold the shared
        # users lock): a test run and `make run`, or two runs, share the one pcscd.
        if self.proc is not None and users_lock is not None and not _try_exclusive(users_lock):
            return
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None


# A vpcd reader slot takes one virtual card: two runs on one machine (a test run and `make run`,
# or parallel test runs) take a free slot or wait their turn on per-slot locks instead of
# fighting over one.
LOCK_DIR = pathlib.Path(os.environ.get("HALSVC_LOCK_DIR", "/tmp"))
USERS_LOCK = LOCK_DIR / "halsvc-pcscd-users.lock"
SLOT_WAIT_S = 150.0


def _open_lock(path: pathlib.Path) -> int:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    with contextlib.suppress(OSError):
        os.fchmod(fd, 0o666)  # shared between users of the machine
    return fd


def _try_exclusive(fd: int) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


VPCD_SLOTS = (VPCD_PORT, VPCD_PORT + 1)  # what Debian's vpcd configures


def _lock_slot(ports: tuple[int, ...]) -> tuple[int, int, int]:
    """Take the first free slot of `ports` (waiting while all are busy): (port, slot fd, users fd)."""
    fds = {port: _open_lock(LOCK_DIR / f"halsvc-vpcd-{port}.lock") for port in ports}
    deadline = time.monotonic() + SLOT_WAIT_S
    chosen: int | None = None
    while chosen is None:
        for port, fd in fds.items():
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue
            chosen = port
            break
        else:
            if time.monotonic() > deadline:
                for fd in fds.values():
                    os.close(fd)
                raise RuntimeError(f"every vpcd reader slot ({', '.join(map(str, ports))}) is held by "
                                   f"another simulated card for {SLOT_WAIT_S:.0f} s (locks in {LOCK_DIR})")
            time.sleep(0.1)
    for port, fd in fds.items():
        if port != chosen:
            os.close(fd)
    users = _open_lock(USERS_LOCK)
    fcntl.flock(users, fcntl.LOCK_SH)
    return chosen, fds[chosen], users


def wait_until_reader_empty(reader: str, timeout_s: float = 10.0) -> None:
    """Block until pcscd reports no card on `reader` (or pcscd is not there to ask). pcscd polls
    vpcd, so a slot handed to the next card before pcscd saw this one go would show the next card
    as this one still present, and its first read would fail."""
    try:
        from smartcard import scard  # the machine's reader stack, as an observer only
    except ImportError:
        return
    rc, ctx = scard.SCardEstablishContext(scard.SCARD_SCOPE_USER)
    if rc != scard.SCARD_S_SUCCESS:
        return
    try:
        state = scard.SCARD_STATE_UNAWARE
        deadline = time.monotonic() + timeout_s
        while (left := deadline - time.monotonic()) > 0:
            rc, states = scard.SCardGetStatusChange(ctx, int(left * 1000), [(reader, state)])
            if rc != scard.SCARD_S_SUCCESS or not states[0][1] & scard.SCARD_STATE_PRESENT:
                return
            state = states[0][1] & ~scard.SCARD_STATE_CHANGED
    finally:
        scard.SCardReleaseContext(ctx)


def _unlock(fds: tuple[int, int]) -> None:
    for fd in fds:
        os.close(fd)  # closing drops the flock


async def start_part(workdir: pathlib.Path, options: dict[str, Any]) -> StationPart:
    card = VirtualCard(workdir, options)
    # An explicit vpcd_port is that slot only; otherwise any free one (the reader name in the
    # device table follows the slot, so the daemon and tests use whichever was free).
    ports = (card.port,) if "vpcd_port" in options else VPCD_SLOTS
    card.port, *fds = await asyncio.to_thread(_lock_slot, ports)
    locks = (fds[0], fds[1])
    pcscd = Pcscd()
    try:
        started = await asyncio.to_thread(pcscd.ensure)
    except BaseException:
        _unlock(locks)
        raise
    try:
        await card.start()
    except BaseException:
        await card.stop()
        if started:
            pcscd.stop(locks[1])
        _unlock(locks)
        raise

    async def stop() -> None:
        try:
            await card.stop()
            with contextlib.suppress(Exception):
                await asyncio.to_thread(wait_until_reader_empty, reader_name(card.port))
            if started:
                await asyncio.to_thread(pcscd.stop, locks[1])
        finally:
            _unlock(locks)

    device = {"driver": "idcard", "reader": reader_name(card.port), "trust_store": str(card.trust_store)}
    return StationPart(name="cccd_card", devices={"idcard0": device}, control=card.control, stop=stop,
                       actions=VirtualCard.ACTIONS)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m simulators.cccd_card", description=__doc__)
    ap.add_argument("--dir", default="run/cccd", help="work dir (trust store goes there)")
    args = ap.parse_args(argv)
    workdir = pathlib.Path(args.dir).resolve()  # before the loop runs: resolve() is blocking I/O

    async def run() -> None:
        part = await start_part(workdir, {})
        device = part.devices["idcard0"]
        print(f"ready reader={device['reader']!r} trust_store={device['trust_store']}", flush=True)
        await serve_until_signalled(part.stop)

    asyncio.run(run())
    return 0

