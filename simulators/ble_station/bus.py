"""A private D-Bus system bus: dbus-daemon with a system-bus config, listening on a Unix socket
in the station's work dir, so bleak (via dbus-fast, which honours DBUS_SYSTEM_BUS_ADDRESS) talks
to our org.bluez stand-in and never to the machine's BlueZ."""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import pathlib
import shutil
import signal

CONFIG = """<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>unix:path={socket}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <allow own="*"/>
    <allow send_type="method_call"/>
    <allow send_type="method_return"/>
    <allow send_type="error"/>
    <allow send_type="signal"/>
    <allow receive_type="method_call"/>
    <allow receive_type="method_return"/>
    <allow receive_type="error"/>
    <allow receive_type="signal"/>
  </policy>
</busconfig>
"""


def _die_with_parent() -> None:
    # A station killed with SIGKILL must not leave its bus behind (PR_SET_PDEATHSIG).
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)


class PrivateBus:
    """`await PrivateBus(dir).start()` -> `.address` ("unix:path=…"); `await .stop()`."""

    def __init__(self, directory: pathlib.Path) -> None:
        self.directory = directory
        self.socket = directory / "system_bus_socket"
        self.address = f"unix:path={self.socket}"
        self._proc: asyncio.subprocess.Process | None = None

    async def start(self) -> PrivateBus:
        exe = shutil.which("dbus-daemon")
        if exe is None:
            raise RuntimeError("dbus-daemon is not installed (Debian package dbus-daemon)")
        self.directory.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            self.socket.unlink()
        conf = self.directory / "bus.conf"
        conf.write_text(CONFIG.format(socket=self.socket))
        with (self.directory / "dbus-daemon.log").open("ab") as log:
            self._proc = await asyncio.create_subprocess_exec(
                exe, f"--config-file={conf}", "--nofork", "--nopidfile", "--print-address",
                stdout=asyncio.subprocess.PIPE, stderr=log, preexec_fn=_die_with_parent)
        assert self._proc.stdout is not None
        # The address line is printed once the socket listens.
        line = await asyncio.wait_for(self._proc.stdout.readline(), 30)
        if not line.startswith(b"unix:"):
            await self.stop()
            text = (self.directory / "dbus-daemon.log").read_text(errors="replace")
            raise RuntimeError(f"dbus-daemon did not start: {line!r} {text}")
        return self

    async def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None or proc.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            proc.terminate()
        try:
            await asyncio.wait_for(proc.wait(), 10)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
