"""`halctl report`: one support bundle (tar.gz) a technician sends home.

What goes in: versions, the daemon's config with secrets removed, device states, the daemon's
recent log records (its in-memory ring), udev / PC/SC / Bluetooth inventory, the doctor's
findings, usage figures (small cells already suppressed) and journals counted by state. Each
source answers over the technician RPC methods, which by construction carry no citizen data;
`tests/test_diag_report.py` plants card reads and prints first and scans the bundle for any
citizen field in every spelling.
"""

from __future__ import annotations

import asyncio
import datetime
import io
import json
import os
import pathlib
import socket
import tarfile
import time
from collections.abc import Callable
from typing import Any

from halsvc import doctor
from halsvc.diag import versions

README = """halsvc support bundle
=====================
versions.json          halctl's and the daemon's versions, Python, kernel, libraries
doctor.json            every `halctl doctor` check: pass / warn / fail and the fix
daemon/status.json     hal.status: uptime, connections, every device's state
daemon/info.json       diag.info: config (secrets removed), paths, environment, uid/groups
daemon/logs.json       diag.logs: the daemon's most recent log records (rate-limited, no citizen data)
daemon/usage-*.json    diag.usage: usage figures by kind and by hour (cells under 5 suppressed)
daemon/journals.json   diag.journals: journals (payments) counted by state only
hardware/udev.json     device.hardware: what udev sees that the daemon could drive
hardware/dev.txt       /dev/halsvc links and the serial ports present
hardware/pcsc.json     PC/SC readers as pcscd lists them
hardware/bluetooth.json  BlueZ adapters on the daemon's system bus
errors.json            what could not be collected, and why
"""


def _json(obj: Any) -> bytes:
    return (json.dumps(obj, ensure_ascii=False, indent=2, sort_keys=True, default=str) + "\n").encode()


def _dev_listing() -> str:
    lines = []
    for base in map(pathlib.Path, ("/dev/halsvc", "/dev/halsvc/usb", "/dev/serial/by-id")):
        if base.is_dir():
            for p in sorted(base.iterdir()):
                if p.is_symlink():
                    lines.append(f"{p} -> {os.readlink(p)}")
    for pattern in ("ttyUSB*", "ttyACM*", "ttyS[0-3]", "usb/lp*", "hidraw*", "gpiochip*"):
        for p in sorted(pathlib.Path("/dev").glob(pattern)):
            try:
                st = p.stat()
            except OSError:
                continue
            lines.append(f"{p} mode {st.st_mode & 0o7777:04o} uid {st.st_uid} gid {st.st_gid}")
    return "\n".join(lines) + "\n" if lines else "no halsvc links or serial ports in /dev\n"


def collect(socket_path: str, doctor_checks: Callable[[], list[doctor.Check]] | None = None
            ) -> dict[str, bytes]:
    """Every member of the bundle, by name."""
    from halsvc.client import Client, RpcError

    files: dict[str, bytes] = {"README.txt": README.encode()}
    errors: dict[str, str] = {}
    daemon: dict[str, Any] = {}
    try:
        with Client(socket_path, timeout=30) as hal:
            for name, method, params in (
                    ("daemon/status.json", "hal.status", {}),
                    ("daemon/info.json", "diag.info", {}),
                    ("daemon/logs.json", "diag.logs", {"limit": 1000}),
                    ("daemon/usage-by-kind.json", "diag.usage", {"by": "method"}),
                    ("daemon/usage-by-hour.json", "diag.usage", {"by": "hour"}),
                    ("daemon/journals.json", "diag.journals", {}),
                    ("hardware/udev.json", "device.hardware", {})):
                try:
                    daemon[name] = hal.call(method, params)
                    files[name] = _json(daemon[name])
                except RpcError as exc:
                    errors[name] = f"{method}: {exc.reason}: {exc.message}"
    except (OSError, ConnectionError) as exc:
        errors["daemon"] = f"halsvc at {socket_path} does not answer: {exc}"
    info = daemon.get("daemon/info.json") or {}
    env = dict(info.get("env") or {})
    files["versions.json"] = _json({"halctl": versions(), "daemon": info.get("versions"),
                                    "host": socket.gethostname()})
    files["hardware/dev.txt"] = _dev_listing().encode()
    try:
        files["hardware/pcsc.json"] = _json({"readers": doctor.pcsc_readers({**os.environ, **env})})
    except Exception as exc:  # pcscd missing: that is a finding, not a reason to stop
        errors["hardware/pcsc.json"] = f"{type(exc).__name__}: {exc}"
    try:
        address = env.get("DBUS_SYSTEM_BUS_ADDRESS") or doctor.SYSTEM_BUS
        files["hardware/bluetooth.json"] = _json({"bus": address,
                                                  "adapters": asyncio.run(doctor.bluez_adapters(address))})
    except Exception as exc:
        errors["hardware/bluetooth.json"] = f"{type(exc).__name__}: {exc}"
    checks = (doctor_checks or (lambda: doctor.run_all(socket_path)))()
    files["doctor.json"] = _json([c.to_json() for c in checks])
    files["errors.json"] = _json(errors)
    return files


def write_bundle(path: pathlib.Path, files: dict[str, bytes]) -> None:
    """A tar.gz of `files` under one top folder, written to a temporary name and renamed, mode 0600."""
    top = path.name.removesuffix(".tar.gz")
    now = time.time()
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in sorted(files.items()):
            member = tarfile.TarInfo(f"{top}/{name}")
            member.size, member.mtime, member.mode = len(data), int(now), 0o644
            tar.addfile(member, io.BytesIO(data))
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(buf.getvalue())
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def default_name() -> str:
    stamp = datetime.datetime.now().strftime("%Y%m%dT%H%M%S")
    return f"halsvc-report-{socket.gethostname()}-{stamp}.tar.gz"
