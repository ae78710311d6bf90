"""A simulated serial scale (or height-weight station) on its own pty.

The scale side owns the pty master; the daemon opens the slave through a stable symlink
(`<workdir>/serial_scale/<device>.tty`), which survives an unplug/plug cycle even though the
kernel hands out a new /dev/pts/N each time. The load follows a person stepping on: the display
swings and settles over `settle_s` seconds, then holds still.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import pathlib
import random
import termios
import tty
from collections.abc import Callable
from typing import Any

from simulators.serial_scale import frames
from simulators.serial_scale.frames import Display

SEVEN_BIT = {"mettler_8217", "and"}
PROTOCOLS = ("mettler_8217", "mt_sics", "and", "cas", "tanita_wb3000")


class PtyPort:
    """A pty whose slave is reachable at a fixed symlink; `unplug()` hangs it up."""

    def __init__(self, link: pathlib.Path, on_data: Callable[[bytes], None]) -> None:
        self.link = link
        self.on_data = on_data
        self.master: int | None = None
        self.slave: int | None = None
        self.plugged = False

    def plug(self) -> None:
        if self.plugged:
            return
        master, slave = os.openpty()
        tty.setraw(slave, termios.TCSANOW)
        os.set_blocking(master, False)
        self.master, self.slave = master, slave
        tmp = self.link.with_suffix(".tmp")
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        tmp.symlink_to(os.ttyname(slave))
        os.replace(tmp, self.link)
        asyncio.get_running_loop().add_reader(master, self._readable)
        self.plugged = True

    def unplug(self) -> None:
        if not self.plugged:
            return
        self.plugged = False
        assert self.master is not None and self.slave is not None
        asyncio.get_running_loop().remove_reader(self.master)
        with contextlib.suppress(FileNotFoundError):
            self.link.unlink()
        # Closing the master hangs up the slave: the daemon's reads fail as on a pulled USB cable.
        os.close(self.master)
        os.close(self.slave)
        self.master = self.slave = None

    def write(self, data: bytes) -> None:
        if not self.plugged or self.master is None or not data:
            return
        with contextlib.suppress(BlockingIOError, OSError):
            os.write(self.master, data)  # a full buffer drops bytes, as a UART would

    def _readable(self) -> None:
        assert self.master is not None
        try:
            data = os.read(self.master, 4096)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            return
        if data:
            self.on_data(data)


class Load:
    """The physics: the weight a person puts on the platform and how the display settles."""

    def __init__(self, capacity_kg: float) -> None:
        self.capacity_kg = capacity_kg
        self.target_kg = 0.0
        self.start_kg = 0.0
        self.since = 0.0
        self.settle_s = 0.0
        self.height_m: float | None = None

    def step(self, target_kg: float, settle_s: float, now: float) -> None:
        self.start_kg = self.raw(now)
        self.target_kg = target_kg
        self.since = now
        self.settle_s = max(0.0, settle_s)

    def raw(self, now: float) -> float:
        t = now - self.since
        if self.settle_s <= 0 or t >= self.settle_s:
            return self.target_kg
        # A damped swing towards the target, landing on it at settle_s.
        delta = self.target_kg - self.start_kg
        frac = t / self.settle_s
        swing = math.exp(-4 * frac) * math.cos(2 * math.pi * 1.5 * t) * (1 - frac)
        return self.target_kg - delta * swing

    def settled(self, now: float) -> bool:
        return self.settle_s <= 0 or now - self.since >= self.settle_s


class SimulatedScale:
    """One device on one pty, speaking `protocol`. Faults: noise, silence, unplug, overload."""

    def __init__(self, device_id: str, protocol: str, link: pathlib.Path, *, mode: str | None = None,
                 capacity_kg: float = 200.0, settle_s: float = 1.5, stream_ms: int = 100,
                 corrupt_checksum: bool = False, seed: int | str | None = None) -> None:
        if protocol not in PROTOCOLS:
            raise ValueError(f"unknown protocol {protocol!r}; known: {', '.join(PROTOCOLS)}")
        self.device_id = device_id
        self.protocol = protocol
        self.mode = mode or ("continuous" if protocol == "cas" else
                             "records" if protocol == "tanita_wb3000" else "polled")
        self.load = Load(capacity_kg)
        self.settle_s = settle_s
        self.stream_ms = stream_ms
        self.corrupt_checksum = corrupt_checksum
        self.zero_offset = 0.0
        self.tare_kg = 0.0
        self.silent = False
        self.noise_per_frame = 0
        # Every random fault comes from this generator, seeded, so a failure can be replayed.
        self.seed: int | str = f"{device_id}:{protocol}" if seed is None else seed
        self.rng = random.Random(self.seed)
        self.port = PtyPort(link, self._received)
        self._rx = b""
        self._echo_until = 0.0
        self._task: asyncio.Task[None] | None = None
        self._record_sent = True
        self.commands_seen = 0
        self.parity_errors = 0

    # --- lifecycle ------------------------------------------------------------------------
    async def start(self) -> None:
        self.port.plug()
        self._task = asyncio.create_task(self._tick(), name=f"scale-sim:{self.device_id}")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self.port.unplug()

    @property
    def path(self) -> str:
        return str(self.port.link)

    def now(self) -> float:
        return asyncio.get_running_loop().time()

    # --- what the indicator shows ---------------------------------------------------------
    def display(self) -> Display:
        now = self.now()
        raw = self.load.raw(now)
        shown = round(raw - self.zero_offset - self.tare_kg, 3)
        return Display(weight_kg=shown, stable=self.load.settled(now),
                       overload=raw - self.zero_offset > self.load.capacity_kg,
                       net=self.tare_kg != 0.0, centre_of_zero=abs(shown) < 0.005)

    # --- control --------------------------------------------------------------------------
    def step_on(self, kg: float, height_m: float | None = None, settle_s: float | None = None) -> None:
        self.load.height_m = height_m
        self.load.step(kg, self.settle_s if settle_s is None else settle_s, self.now())
        self._record_sent = False

    def step_off(self, settle_s: float | None = None) -> None:
        self.load.step(0.0, 0.3 if settle_s is None else settle_s, self.now())
        self._record_sent = True

    def reseed(self, seed: int | str) -> None:
        self.seed = seed
        self.rng = random.Random(seed)

    def random_noise(self, size: int) -> bytes:
        return self.rng.randbytes(size)

    def inject_noise(self, data: bytes) -> None:
        self.port.write(data)

    def status(self) -> dict[str, Any]:
        d = self.display()
        return {"device": self.device_id, "protocol": self.protocol, "mode": self.mode,
                "path": self.path, "plugged": self.port.plugged, "silent": self.silent,
                "weight_kg": d.weight_kg, "stable": d.stable, "overload": d.overload,
                "zero_offset_kg": self.zero_offset, "tare_kg": self.tare_kg,
                "commands_seen": self.commands_seen, "parity_errors": self.parity_errors,
                "seed": self.seed}

    # --- the wire -------------------------------------------------------------------------
    def send(self, frame: bytes) -> None:
        if self.silent:
            return
        if self.noise_per_frame:
            frame = self.random_noise(self.noise_per_frame) + frame
        self.port.write(frames.seven_e_one(frame) if self.protocol in SEVEN_BIT else frame)

    def _received(self, data: bytes) -> None:
        if self.protocol in SEVEN_BIT:
            data, bad = frames.from_seven_e_one(data)
            self.parity_errors += bad
        if self.silent:
            return
        if self.protocol == "mettler_8217":
            self._on_8217(data)
            return
        self._rx += data
        while b"\n" in self._rx:
            line, self._rx = self._rx.split(b"\n", 1)
            self._on_line(line.rstrip(b"\r"))
        self._rx = self._rx[-256:]

    def _on_8217(self, data: bytes) -> None:
        now = self.now()
        for b in data:
            c = bytes([b])
            if now < self._echo_until and c not in (b"W", b"Z", b"T", b"C", b"E"):
                self.send(c)  # the echo test returns what follows E verbatim
                continue
            self._echo_until = 0.0
            self.commands_seen += 1
            if c == b"W":
                self.send(frames.mettler_8217_weight(self.display()))
            elif c == b"Z":
                self._zero()
            elif c == b"T":
                self._tare()
            elif c == b"C":
                self.tare_kg = 0.0
            elif c == b"E":
                self.send(frames.STX + b"E" + frames.CR)
                self._echo_until = now + 0.2

    def _zero(self) -> bool:
        d = self.display()
        if not d.stable or d.overload:
            return False
        self.zero_offset = self.load.raw(self.now())
        self.tare_kg = 0.0
        return True

    def _tare(self) -> bool:
        d = self.display()
        if not d.stable or d.overload or d.weight_kg < 0:
            return False
        self.tare_kg += d.weight_kg
        return True

    def _on_line(self, line: bytes) -> None:
        self.commands_seen += 1
        d = self.display()
        if self.protocol == "mt_sics":
            if line == b"SI":
                self.send(frames.sics_weight(d, immediate=True))
            elif line == b"S":
                self.send(frames.sics_weight(d, immediate=False))
            elif line == b"Z":
                self.send(b"Z A\r\n" if self._zero() else b"Z I\r\n")
            elif line == b"T":
                if self._tare():
                    self.send(b"T S " + f"{self.tare_kg:10.2f} kg".encode() + b"\r\n")
                else:
                    self.send(b"T I\r\n")
            elif line == b"I4":
                self.send(b'I4 A "SIM' + self.device_id.encode() + b'"\r\n')
            elif line == b"SIR":
                self.mode = "continuous"
            elif line == b"@":
                self.mode = "polled"
                self.tare_kg = 0.0
                self.send(b'I4 A "SIM' + self.device_id.encode() + b'"\r\n')
            else:
                self.send(b"ES\r\n")
        elif self.protocol == "and":
            if line == b"Q":
                self.send(frames.and_weight(d))
            elif line == b"S":
                if d.stable:
                    self.send(frames.and_weight(d))
            elif line == b"Z":
                self.send(frames.ACK if self._zero() else b"EC,E2\r\n")
            elif line == b"T":
                self.send(frames.ACK if self._tare() else b"EC,E2\r\n")
            else:
                self.send(b"EC,E1\r\n")
        # CAS and the Tanita station take no commands: they ignore what they are sent.

    async def _tick(self) -> None:
        """Continuous output (CAS, streaming A&D/SICS) and the station's one record per person."""
        while True:
            await asyncio.sleep(self.stream_ms / 1000)
            if not self.port.plugged:
                continue
            d = self.display()
            if self.mode == "continuous":
                if self.protocol == "cas":
                    self.send(frames.cas_weight(d))
                elif self.protocol == "and":
                    self.send(frames.and_weight(d))
                elif self.protocol == "mt_sics":
                    self.send(frames.sics_weight(d, immediate=True))
            elif self.mode == "records" and not self._record_sent and d.stable and not self.silent:
                self._record_sent = True
                height = self.load.height_m or 1.70
                if d.overload or d.weight_kg <= 0:
                    continue
                self.send(frames.tanita_record(d.weight_kg, height,
                                               corrupt_checksum=self.corrupt_checksum))
