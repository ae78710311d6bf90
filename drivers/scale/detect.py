"""Which scale protocol is on this port? Found by listening first, then by safe probes.

Safe means a probe never changes the scale: only echo, identify and weight queries are sent —
never zero, tare or clear. Line settings are tried group by group (protocols sharing a baud rate
and framing are heard in one listening window). A scale that streams (CAS, A&D in stream mode) or
a station that just sent a record is recognised by its frames; a polled one by its answer to
its protocol's probe. Before each CRLF probe a bare CRLF clears what earlier probes left in the
scale's line buffer, so an A&D does not read `EhelloQ`.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable
from typing import Any

from drivers.base import HalError
from drivers.scale.link import ScaleLink
from protocols import scale
from protocols.scale import Reading, ScaleCodec


class Detected:
    def __init__(self, protocol: str, mode: str) -> None:
        self.protocol = protocol
        self.mode = mode

    def __repr__(self) -> str:
        return f"Detected({self.protocol}, {self.mode})"


def _groups(candidates: Iterable[str], software_parity: bool) -> list[tuple[dict[str, Any], list[str]]]:
    groups: dict[tuple[Any, ...], tuple[dict[str, Any], list[str]]] = {}
    for name in candidates:
        line = scale.get(name)["line"]
        if software_parity:
            key: tuple[Any, ...] = (line["baudrate"],)  # 7E1 and 8N1 share one 8N1 port setting
        else:
            key = (line["baudrate"], line["bytesize"], line["parity"], line["stopbits"])
        groups.setdefault(key, (dict(line), []))[1].append(name)
    return list(groups.values())


def _heard(name: str, wire: bytes, software_parity: bool, verify_checksum: bool) -> int:
    """How many well-formed readings of protocol `name` are in `wire` (replies do not count:
    a polled scale answering a stray line with an error is not streaming)."""
    codec = ScaleCodec(scale.get(name), software_parity, verify_checksum)
    return sum(1 for ev in codec.feed(wire) if isinstance(ev, Reading))


def _passive(names: list[str], wire: bytes, software_parity: bool, verify_checksum: bool
             ) -> Detected | None:
    """The protocol whose frames arrived unasked (a stream, or a station's record), if any.

    Also checked after each probe: a station's record may land while we wait for an answer.
    """
    best, best_count = None, 0
    for name in names:
        count = _heard(name, wire, software_parity, verify_checksum)
        if count > best_count:
            best, best_count = name, count
    if best is None:
        return None
    return Detected(best, "records" if scale.get(best)["mode"] == "records" else "continuous")


async def _collect(link: ScaleLink, seconds: float, done: Any = None) -> bytes:
    """Bytes received over `seconds` (or until `done(bytes)` says enough)."""
    assert link.capture is not None
    loop = asyncio.get_running_loop()
    end = loop.time() + seconds
    while True:
        if done is not None and done(bytes(link.capture)):
            break
        left = end - loop.time()
        if left <= 0:
            break
        link.received.clear()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(left):  # not wait_for: it can swallow a cancellation on 3.11
                await link.received.wait()
    return bytes(link.capture)


async def detect(link: ScaleLink, candidates: Iterable[str], *, software_parity: bool,
                 verify_checksum: bool = True, listen_s: float = 0.6, probe_s: float = 0.4) -> Detected:
    """Find the protocol on `link`; HalError("no_device") when none is recognised."""
    candidates = list(candidates)
    link.capture = bytearray()
    try:
        for line, names in _groups(candidates, software_parity):
            link.reconfigure(line, software_parity)
            link.capture.clear()
            heard = await _collect(link, listen_s)
            passive = _passive(names, heard, software_parity, verify_checksum)
            if passive is not None:
                return passive
            for name in names:
                codec = ScaleCodec(scale.get(name), software_parity, verify_checksum)
                probe = codec.probe()
                if probe is None:
                    continue
                send, expect = probe
                if send.endswith(b"\r\n"):
                    link.write(codec.encode_raw(b"\r\n"))
                    await _collect(link, min(0.1, probe_s / 4))
                link.capture.clear()
                link.write(send)
                answered = await _collect(link, probe_s,
                                          lambda wire, c=codec, e=expect: c.probe_answered(e, wire))
                if codec.probe_answered(expect, answered):
                    return Detected(name, "polled")
                passive = _passive(names, answered, software_parity, verify_checksum)
                if passive is not None:
                    return passive
        raise HalError("no_device", "no known scale protocol answered on the port",
                       code=-32002, tried=list(candidates))
    finally:
        link.capture = None
