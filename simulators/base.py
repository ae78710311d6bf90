"""What every simulator gives the simulated station.

A simulator module that belongs in the station defines

    async def start_part(workdir: pathlib.Path, options: dict) -> StationPart

which starts the simulated device(s) on real transports (pty, TCP, vpcd, private D-Bus…) and
returns a `StationPart`: the `[devices.<id>]` config tables that wire the daemon to it, and a
`control(action, args)` coroutine through which tests and technicians inject faults
(`python -m simulators.control <part> <action> [json]`).
"""

from __future__ import annotations

import asyncio
import pathlib
import signal
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

ControlHandler = Callable[[str, Mapping[str, Any]], Awaitable[Mapping[str, Any]]]
StopHandler = Callable[[], Awaitable[None]]


class UnknownAction(Exception):
    """A control action the part does not know."""


@dataclass
class StationPart:
    name: str
    devices: dict[str, dict[str, Any]]  # device id -> config table (must include "driver")
    control: ControlHandler
    stop: StopHandler
    env: dict[str, str] = field(default_factory=dict)  # variables the daemon needs (e.g. D-Bus)
    actions: tuple[str, ...] = ()  # control actions, for --help and halctl


async def no_control(action: str, args: Mapping[str, Any]) -> Mapping[str, Any]:
    raise UnknownAction(action)


async def no_stop() -> None:
    return None


async def serve_until_signalled(stop: StopHandler) -> None:
    """A part run on its own (`python -m simulators.<name>`): serve until SIGINT/SIGTERM, then stop."""
    done = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, done.set)
    try:
        await done.wait()
    finally:
        await stop()


def workdir_path(workdir: pathlib.Path, name: str) -> pathlib.Path:
    """A path inside the station's work dir for a part's sockets and files."""
    path = workdir / name
    path.parent.mkdir(parents=True, exist_ok=True)
    return path
