"""The daemon as a process: config errors, roles by uid, shutdown, its socket, the watchdog,
and halctl against it."""

from __future__ import annotations

import asyncio
import json
import os
import pathlib
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from conftest import run
from harness import NEEDS_SETPRIV, ROOT, Station

from halsvc import sdnotify
from halsvc.client import RpcError

HALCTL = [sys.executable, "-m", "halsvc.cli"]


def halsvc(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "halsvc", *args], capture_output=True, text=True,
                          timeout=60, cwd=ROOT, env={**os.environ, **(env or {})})


def test_bad_config_names_file_line_and_key(tmp_path: pathlib.Path) -> None:
    cfg = tmp_path / "halsvc.toml"
    cfg.write_text('profile = "sim"\n\n[daemon]\nstate_dir = "/tmp/x"\nmax_conections = 5\n')
    out = halsvc("--config", str(cfg), "--socket", str(tmp_path / "s.sock"))
    assert out.returncode == 78
    assert f"{cfg}:5: daemon.max_conections: is not a known field" in out.stderr


def test_bad_device_option_names_its_line(tmp_path: pathlib.Path) -> None:
    cfg = tmp_path / "halsvc.toml"
    cfg.write_text('[devices.panel0]\ndriver = "gpio"\npin_factory = "mock"\nbuzzer = "eighteen"\n')
    out = halsvc("--config", str(cfg), "--check-config")
    assert out.returncode == 78
    assert f"{cfg}:4: devices.panel0.buzzer: must be an integer" in out.stderr


def test_unknown_driver_and_broken_toml(tmp_path: pathlib.Path) -> None:
    cfg = tmp_path / "a.toml"
    cfg.write_text('[devices.x0]\ndriver = "teleporter"\n')
    out = halsvc("--config", str(cfg), "--check-config")
    assert out.returncode == 78 and "devices.x0.driver: unknown driver 'teleporter'" in out.stderr
    cfg.write_text("[daemon\n")
    out = halsvc("--config", str(cfg), "--check-config")
    assert out.returncode == 78 and "not valid TOML" in out.stderr


def test_missing_config_is_a_clear_error(tmp_path: pathlib.Path) -> None:
    out = halsvc("--config", str(tmp_path / "none.toml"))
    assert out.returncode == 78 and "cannot read config" in out.stderr


def test_second_daemon_on_a_live_socket_refuses_and_stale_socket_is_replaced(station: Callable[..., Station]
                                                                              ) -> None:
    st = station(only=set())
    out = halsvc("--config", str(st.config_path), "--socket", str(st.socket))
    assert out.returncode == 78 and "already serving" in out.stderr
    st.stop_daemon(signal.SIGKILL)  # leaves its socket file behind
    assert st.socket.exists()
    st.start_daemon()
    with st.sync_client() as hal:
        assert hal.call("hal.status")["devices"] == []


@pytest.mark.skipif(NEEDS_SETPRIV, reason="needs root and setpriv")
def test_role_comes_from_the_callers_uid(station: Callable[..., Station]) -> None:
    st = station(only={"gpio_panel"}, config={"daemon": {"socket_mode": "0666"},
                                              "roles": {"technician": {"gids": [0]}}})
    status, selftest, beep = st.call_as_nobody(("hal.status", {}), ("device.selftest", {"device": "panel0"}),
                                               ("buzzer.beep", {"count": 1, "on_ms": 10}))
    assert status["result"]["role"] == "kiosk"  # the sim profile makes every local user a kiosk
    assert selftest == {"error": [-32001, "permission_denied"]}
    assert beep == {"result": {"beeps": 1}}
    with st.sync_client() as hal:  # root, here
        assert hal.call("hal.status")["role"] == "admin"
        assert hal.call("device.selftest", {"device": "panel0"})["passed"]


def test_a_clean_stop_logs_devices_stopping_not_a_lost_link(station: Callable[..., Station]) -> None:
    st = station(only={"gpio_panel"})

    async def online() -> None:
        async with st.client() as hal:
            await st.until_online(hal, "panel0")

    run(online())
    assert st.stop_daemon() == 0
    assert "panel0: stopping device=panel0 reason=stopping" in st.log()
    assert "link_lost" not in st.log()  # a technician reading the journal would chase a cable


def test_sigterm_fails_inflight_requests_with_shutting_down(station: Callable[..., Station]) -> None:
    st = station(only={"gpio_panel"})

    async def go() -> tuple[str, int]:
        async with st.client() as hal:
            started = asyncio.Event()
            beep = asyncio.ensure_future(hal.call("buzzer.beep", {"count": 100, "on_ms": 500},
                                                  on_progress=lambda e: started.set()))
            await asyncio.wait_for(started.wait(), 20)
            assert st.daemon is not None
            st.daemon.send_signal(signal.SIGTERM)
            try:
                await beep
            except RpcError as exc:
                reason = exc.reason
            rc = await asyncio.to_thread(st.daemon.wait, 30)
            return reason, rc

    reason, rc = run(go())
    assert reason == "shutting_down" and rc == 0
    assert st.control("gpio_panel", "wait", buzzer=True, level=0)["buzzer"] == 0.0  # silenced on the way out
    assert not st.socket.exists()


def test_watchdog_pings_stop_while_the_loop_is_stuck(tmp_path: pathlib.Path, monkeypatch: Any) -> None:
    """WATCHDOG=1 comes from a loop callback: a blocked loop sends none, so systemd restarts us."""
    path = tmp_path / "n.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    monkeypatch.setenv("NOTIFY_SOCKET", str(path))
    arrivals: list[float] = []
    stop = threading.Event()

    def listen() -> None:
        sock.settimeout(0.05)
        while not stop.is_set():
            try:
                if sock.recv(100) == b"WATCHDOG=1":
                    arrivals.append(time.monotonic())
            except TimeoutError:
                pass

    listener = threading.Thread(target=listen)
    listener.start()
    blocked: list[float] = []

    async def go() -> None:
        dog = sdnotify.Watchdog(0.02)
        dog.start()
        await asyncio.sleep(0.2)
        blocked.append(time.monotonic())
        time.sleep(0.6)  # noqa: ASYNC251 - on purpose: the loop is stuck, as a blocking driver call would
        blocked.append(time.monotonic())
        await asyncio.sleep(0.2)
        dog.stop()

    try:
        asyncio.run(go())
    finally:
        stop.set()
        listener.join()
        sock.close()
    before = [t for t in arrivals if t < blocked[0]]
    during = [t for t in arrivals if blocked[0] + 0.05 < t < blocked[1]]
    after = [t for t in arrivals if t > blocked[1]]
    assert before and after and not during


def test_listen_fds_are_taken_only_for_our_pid(monkeypatch: Any) -> None:
    monkeypatch.setenv("LISTEN_PID", str(os.getpid() + 1))
    monkeypatch.setenv("LISTEN_FDS", "1")
    assert sdnotify.listen_sockets() == []
    monkeypatch.setenv("WATCHDOG_USEC", "4000000")
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    assert sdnotify.watchdog_interval() == 2.0
    monkeypatch.setenv("WATCHDOG_PID", "1")
    assert sdnotify.watchdog_interval() is None


# --- halctl -----------------------------------------------------------------------------------------
def halctl(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*HALCTL, *args], capture_output=True, text=True, timeout=60, cwd=ROOT,
                          env={**os.environ, **(env or {})})


def test_halctl_status_devices_call_events_and_exit_codes(station: Callable[..., Station]) -> None:
    st = station(only={"gpio_panel"})
    sock = str(st.socket)
    out = halctl("status", "--socket", sock)
    assert out.returncode == 0 and "panel0" in out.stdout and "online" in out.stdout
    out = halctl("--json", "status", env={"HALSVC_SOCKET": sock})  # found through the environment
    assert out.returncode == 0 and json.loads(out.stdout)["devices"][0]["device"] == "panel0"
    out = halctl("devices", "--json", "--socket", sock)
    assert json.loads(out.stdout)[0]["kind"] == "gpio"
    out = halctl("devices", "--hardware", "--json", "--socket", sock)
    assert out.returncode == 0 and isinstance(json.loads(out.stdout), list)
    out = halctl("call", "buzzer.beep", '{"count": 2, "on_ms": 10}', "--socket", sock)
    assert out.returncode == 0 and json.loads(out.stdout) == {"beeps": 2}
    assert "buzzer.beep" in out.stderr  # progress goes to stderr
    out = halctl("call", "indicator.set", '{"name": "x", "pattern": "on"}', "--socket", sock)
    assert out.returncode == 1 and "device_not_found" in out.stderr
    out = halctl("call", "indicator.set", "{not json", "--socket", sock)
    assert out.returncode == 2
    out = halctl("frobnicate")
    assert out.returncode == 2
    out = halctl("status", "--socket", str(st.workdir / "nothing.sock"))
    assert out.returncode == 3 and "make run" in out.stderr
    proc = subprocess.Popen([*HALCTL, "events", "presence.*", "-n", "1", "--json", "--socket", sock],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        assert proc.stderr is not None and "watching presence.*" in proc.stderr.readline()
        st.control("gpio_panel", "person_arrives")
        line, _ = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert json.loads(line)["topic"] == "presence.changed"
