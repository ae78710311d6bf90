"""systemd/: the units verify cleanly, the service is hardened to an exposure of 1.5 or lower,
sysusers/tmpfiles entries apply to an empty root, and the daemon started with the socket unit's
settings through systemd-socket-activate answers on the socket and talks sd_notify."""

from __future__ import annotations

import contextlib
import json
import os
import pathlib
import re
import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
SYSTEMD = ROOT / "systemd"
UNITS = ("halsvc.service", "halsvc.socket")
MAX_EXPOSURE = 1.5

needs_systemd = pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze missing")


def unit_settings(name: str) -> dict[str, list[str]]:
    """Key → every value it is given in the unit (sections flattened: our keys do not clash)."""
    out: dict[str, list[str]] = {}
    for raw in (SYSTEMD / name).read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";", "[")):
            continue
        key, _, value = line.partition("=")
        out.setdefault(key.strip(), []).append(value.strip())
    return out


def copy_units_runnable(dest: pathlib.Path) -> pathlib.Path:
    """The units as the installer places them, with ExecStart pointing at an executable that
    exists on this machine (verify checks it); everything else byte for byte."""
    unit_dir = dest / "units"
    unit_dir.mkdir()
    program = dest / "bin" / "halsvc"
    program.parent.mkdir()
    program.write_text("#!/bin/sh\nexit 0\n")
    program.chmod(0o755)
    for name in UNITS:
        text = (SYSTEMD / name).read_text().replace("ExecStart=/usr/bin/halsvc", f"ExecStart={program}")
        text = text.replace("ExecStartPre=+/usr/bin/halsvc", f"ExecStartPre=+{program}")
        (unit_dir / name).write_text(text)
    return unit_dir


@needs_systemd
def test_units_verify_with_nothing_on_stderr(tmp_path: pathlib.Path) -> None:
    unit_dir = copy_units_runnable(tmp_path)
    out = subprocess.run(["systemd-analyze", "verify", *(str(unit_dir / n) for n in UNITS)],
                         capture_output=True, text=True)
    assert out.stderr == ""
    assert out.returncode == 0


@needs_systemd
def test_verify_would_catch_a_bad_key(tmp_path: pathlib.Path) -> None:
    # verify exits 0 on unknown keys; only its stderr tells: make sure we would see it.
    unit_dir = copy_units_runnable(tmp_path)
    path = unit_dir / "halsvc.service"
    path.write_text(path.read_text().replace("[Service]\n", "[Service]\nProtectEverything=yes\n"))
    out = subprocess.run(["systemd-analyze", "verify", str(path)], capture_output=True, text=True)
    assert "ProtectEverything" in out.stderr


@needs_systemd
def test_service_exposure_is_at_most_1_5() -> None:
    out = subprocess.run(["systemd-analyze", "security", "--offline=yes", "--no-pager",
                          str(SYSTEMD / "halsvc.service")], capture_output=True, text=True)
    m = re.search(r"Overall exposure level for halsvc\.service: (\d+\.\d)", out.stdout)
    assert m, out.stdout + out.stderr
    assert float(m.group(1)) <= MAX_EXPOSURE, out.stdout


def test_service_has_the_settings_the_issue_asks_for() -> None:
    s = unit_settings("halsvc.service")
    assert s["Type"] == ["notify"]
    assert s["WatchdogSec"] and s["Restart"] == ["on-failure"]
    assert s["User"] == ["halsvc"] and s["NoNewPrivileges"] == ["yes"]
    assert s["CapabilityBoundingSet"] == [""]
    assert s["ProtectSystem"] == ["strict"] and s["DevicePolicy"] == ["closed"]
    assert "@system-service" in s["SystemCallFilter"]
    families = set(" ".join(s["RestrictAddressFamilies"]).split())
    assert "AF_NETLINK" in families and "AF_UNIX" in families  # udev events, socket/D-Bus/pcscd
    assert "AF_BLUETOOTH" not in families and "AF_PACKET" not in families
    allowed = {v.split()[0] for v in s["DeviceAllow"]}
    assert {"char-ttyUSB", "char-ttyACM", "char-usb_device", "char-usb", "char-hidraw"} <= allowed
    # Either would stop hot-plug (no netlink, no device nodes).
    assert "PrivateNetwork" not in s and "PrivateDevices" not in s
    assert s["ExecStart"] == ["/usr/bin/halsvc --config /etc/halsvc/halsvc.toml"]


def test_socket_has_the_settings_the_issue_asks_for() -> None:
    s = unit_settings("halsvc.socket")
    assert s["ListenStream"] == ["/run/halsvc/halsvc.sock"]
    assert s["SocketGroup"] == ["halsvc"] and s["SocketMode"] == ["0660"]


@pytest.mark.skipif(shutil.which("systemd-sysusers") is None, reason="systemd-sysusers missing")
def test_sysusers_and_tmpfiles_apply_to_an_empty_root(tmp_path: pathlib.Path) -> None:
    root = tmp_path / "root"
    for kind in ("sysusers.d", "tmpfiles.d"):
        (root / "usr/lib" / kind).mkdir(parents=True)
        shutil.copy(SYSTEMD / kind / "halsvc.conf", root / "usr/lib" / kind / "halsvc.conf")
    (root / "etc").mkdir()
    out = subprocess.run(["systemd-sysusers", f"--root={root}"], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    users = {line.split(":")[0]: line.split(":") for line in (root / "etc/passwd").read_text().splitlines()}
    groups = {line.split(":")[0]: line.split(":") for line in (root / "etc/group").read_text().splitlines()}
    assert users["halsvc"][5] == "/var/lib/halsvc" and users["halsvc"][6] == "/usr/sbin/nologin"
    assert "halsvc-tech" in groups
    for device_group in ("dialout", "lp"):
        assert "halsvc" in groups[device_group][3].split(",")
    if os.geteuid() != 0:
        return  # tmpfiles cannot chown without root
    out = subprocess.run(["systemd-tmpfiles", f"--root={root}", "--create"], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    state = (root / "var/lib/halsvc").stat()
    assert state.st_mode & 0o777 == 0o750
    assert state.st_uid == int(users["halsvc"][2]) and state.st_gid == int(groups["halsvc"][2])


# --- socket activation -------------------------------------------------------------------------

def daemon_available() -> bool:
    return (ROOT / "halsvc" / "daemon.py").exists()


@contextlib.contextmanager
def notify_socket(path: pathlib.Path) -> Iterator[socket.socket]:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    try:
        yield sock
    finally:
        sock.close()


def wait_notify(sock: socket.socket, want: str, timeout: float = 20.0) -> list[str]:
    """Every sd_notify field received until one equal to `want` (or the timeout)."""
    seen: list[str] = []
    sock.settimeout(timeout)
    while want not in seen:
        try:
            datagram = sock.recv(4096).decode()
        except TimeoutError:
            raise AssertionError(f"no {want} from the daemon; got {seen}") from None
        seen.extend(datagram.split("\n"))
    return seen


def rpc_line(conn: socket.socket, request: dict[str, object], timeout: float = 20.0) -> dict[str, object]:
    conn.settimeout(timeout)
    conn.sendall(json.dumps(request).encode() + b"\n")
    buf = b""
    while True:
        buf += conn.recv(65536) or b"EOF"
        while b"\n" in buf:
            line, buf = buf.split(b"\n", 1)
            msg = json.loads(line)
            if msg.get("id") == request["id"]:
                return msg
        assert not buf.endswith(b"EOF"), "daemon closed the connection"


@pytest.mark.skipif(shutil.which("systemd-socket-activate") is None, reason="systemd-socket-activate missing")
@pytest.mark.skipif(not daemon_available(), reason="halsvc/daemon.py not written yet")
def test_daemon_socket_activated_answers_and_notifies(tmp_path: pathlib.Path) -> None:
    sock_settings = unit_settings("halsvc.socket")
    fdname = sock_settings["FileDescriptorName"][0]
    # The unit's socket, moved under the test's directory (same name, same mode).
    listen = tmp_path / pathlib.PurePath(sock_settings["ListenStream"][0]).name
    config = tmp_path / "halsvc.toml"
    config.write_text(f'profile = "sim"\n[daemon]\nstate_dir = "{tmp_path / "state"}"\n')
    notify_path = tmp_path / "notify.sock"
    env = {**os.environ, "NOTIFY_SOCKET": str(notify_path), "WATCHDOG_USEC": "400000",
           "PYTHONPATH": str(ROOT)}
    with notify_socket(notify_path) as notify:
        proc = subprocess.Popen(
            ["systemd-socket-activate", "-l", str(listen), f"--fdname={fdname}",
             "-E", "NOTIFY_SOCKET", "-E", "WATCHDOG_USEC", "-E", "PYTHONPATH",
             sys.executable, "-m", "halsvc", "--config", str(config)],
            env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        try:
            wait_for_path(listen, proc)
            os.chmod(listen, int(sock_settings["SocketMode"][0], 8))
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
                conn.connect(str(listen))  # the first connection starts the daemon
                reply = rpc_line(conn, {"jsonrpc": "2.0", "id": 1, "method": "rpc.discover", "params": {}})
                assert "result" in reply, reply
                assert reply["result"]["openrpc"]  # type: ignore[index]
            seen = wait_notify(notify, "READY=1")
            seen += wait_notify(notify, "WATCHDOG=1")
            proc.send_signal(signal.SIGTERM)  # socket-activate exec'd the daemon: same pid
            seen += wait_notify(notify, "STOPPING=1")
            assert proc.wait(timeout=20) == 0
            assert "READY=1" in seen and "STOPPING=1" in seen
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            if proc.stdout is not None:
                proc.stdout.close()


def wait_for_path(path: pathlib.Path, proc: subprocess.Popen[bytes]) -> None:
    """Wait until systemd-socket-activate has bound the socket: it prints "Listening on ..."
    once it has, and an early exit (bad arguments) closes its output, so a failure is fast."""
    import selectors

    assert proc.stdout is not None
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    buf = b""
    while not path.exists():
        if not sel.select(timeout=20):
            raise AssertionError("systemd-socket-activate did not start listening")
        chunk = os.read(proc.stdout.fileno(), 4096)
        if not chunk:
            raise AssertionError(f"systemd-socket-activate exited: {buf.decode(errors='replace')}")
        buf += chunk
    sel.close()
