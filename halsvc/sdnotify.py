"""systemd from inside the daemon: sd_notify, socket activation and the watchdog, without libsystemd.

The watchdog ping is a callback scheduled on the event loop itself, so a loop that is stuck
(a blocking call in a driver, a busy loop) stops pinging and systemd restarts the service.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket


def notify(*fields: str) -> bool:
    """Send `READY=1`, `STATUS=…`, `WATCHDOG=1`, `STOPPING=1` to $NOTIFY_SOCKET. False if none."""
    path = os.environ.get("NOTIFY_SOCKET")
    if not path:
        return False
    addr = "\0" + path[1:] if path.startswith("@") else path
    with contextlib.suppress(OSError), socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.sendto("\n".join(fields).encode(), addr)
        return True
    return False


def listen_sockets() -> list[tuple[str, socket.socket]]:
    """The sockets systemd passed (LISTEN_FDS from fd 3), with their names; consumes the variables
    so children do not inherit them."""
    try:
        if int(os.environ.get("LISTEN_PID", "0")) != os.getpid():
            return []
        count = int(os.environ.get("LISTEN_FDS", "0"))
    except ValueError:
        return []
    names = os.environ.get("LISTEN_FDNAMES", "").split(":")
    for var in ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"):
        os.environ.pop(var, None)
    out = []
    for i in range(count):
        fd = 3 + i
        os.set_inheritable(fd, False)
        sock = socket.socket(fileno=fd)
        out.append((names[i] if i < len(names) else "unknown", sock))
    return out


def watchdog_interval() -> float | None:
    """Half of WATCHDOG_USEC in seconds (systemd's advice), or None when no watchdog is set."""
    try:
        usec = int(os.environ.get("WATCHDOG_USEC", "0"))
        pid = int(os.environ.get("WATCHDOG_PID", str(os.getpid())))
    except ValueError:
        return None
    if usec <= 0 or pid != os.getpid():
        return None
    return usec / 2_000_000


class Watchdog:
    """Pings WATCHDOG=1 from the event loop every half watchdog period."""

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self._handle: asyncio.TimerHandle | None = None

    def start(self) -> None:
        self._ping()

    def _ping(self) -> None:
        notify("WATCHDOG=1")
        self._handle = asyncio.get_running_loop().call_later(self.interval, self._ping)

    def stop(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
