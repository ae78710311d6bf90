"""The simulated station and the daemon as real processes, for end-to-end tests.

    st = Station(only={"gpio_panel"}).start()
    async with st.client() as hal: ...
    st.control("gpio_panel", "person_arrives")
    st.call_as_nobody(("hal.status", {}))   # as an unprivileged local program
    st.restart_daemon(); st.stop()

The daemon gets a NOTIFY_SOCKET that the harness binds, and the harness waits for its
READY=1 — the same handshake systemd uses — so no test sleeps for a start-up.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import pathlib
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import tomllib
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from halsvc.client import AsyncClient, Client
from simulators.control import control as sim_control
from simulators.tomlw import dumps as toml_dumps

ROOT = pathlib.Path(__file__).resolve().parent.parent
START_TIMEOUT = 60.0  # a ceiling against hangs, not a measurement


def _merge(base: dict[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    for k, v in over.items():
        if isinstance(v, Mapping) and isinstance(base.get(k), dict):
            _merge(base[k], v)
        else:
            base[k] = v
    return base


@contextlib.contextmanager
def online(*devices: str, **station: Any) -> Iterator[Station]:
    """A started `Station(**station)` once `devices` (default: every configured one) are online;
    stopped on exit. For module-scoped fixtures that share one station."""
    st = Station(**station).start()
    try:
        async def wait() -> None:
            async with st.client() as hal:
                want = devices or [d["device"] for d in (await hal.call("device.list"))["devices"]]
                await st.until_online(hal, *want)

        asyncio.run(wait())
        yield st
    finally:
        st.stop()


NEEDS_SETPRIV = os.getuid() != 0 or shutil.which("setpriv") is None


class Station:
    def __init__(self, only: Iterable[str] | None = None, config: Mapping[str, Any] | None = None,
                 workdir: pathlib.Path | None = None,
                 options: Mapping[str, Mapping[str, Any]] | None = None) -> None:
        self.only = set(only) if only is not None else None
        # Per-part simulator options, e.g. {"escpos_printer": {"transport": "tcp"}}.
        self.options = {p: dict(o) for p, o in (options or {}).items()}
        self.extra_config = dict(config or {})
        # Short paths: Unix socket paths are limited to 108 bytes.
        self.workdir = workdir or pathlib.Path(tempfile.mkdtemp(prefix="hal-", dir="/tmp"))
        self.simdir = self.workdir / "sim"
        self.socket = self.workdir / "halsvc.sock"
        self.config_path = self.workdir / "halsvc.toml"
        self.daemon_log = self.workdir / "daemon.log"
        self.station: subprocess.Popen[bytes] | None = None
        self.daemon: subprocess.Popen[bytes] | None = None
        self.env: dict[str, str] = {}
        self.notify_fields: list[str] = []

    # --- processes --------------------------------------------------------------------------
    def start(self, daemon: bool = True) -> Station:
        """Start the simulators, write the daemon's config and (unless `daemon=False`) the daemon."""
        cmd = [sys.executable, "-m", "simulators.station", "--dir", str(self.simdir)]
        if self.only is not None:
            cmd += ["--only", ",".join(sorted(self.only))]
        for part, opts in self.options.items():
            for key, value in opts.items():
                text = value if isinstance(value, str) else json.dumps(value)
                cmd += ["--part-option", f"{part}.{key}={text}"]
        self.station = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE,
                                        stderr=open(self.workdir / "station.log", "wb"))
        assert self.station.stdout is not None
        line = self.station.stdout.readline().decode()
        if not line.startswith("ready "):
            self.stop()
            raise RuntimeError(f"station did not start: {line!r}; see {self.workdir / 'station.log'}")
        env_file = self.simdir / "station.env"
        self.env = dict(x.split("=", 1) for x in env_file.read_text().splitlines() if "=" in x)
        self.write_config()
        if daemon:
            self.start_daemon()
        return self

    def write_config(self, **extra: Any) -> None:
        doc = tomllib.loads((self.simdir / "halsvc.toml").read_text())
        doc["daemon"]["state_dir"] = str(self.workdir / "state")
        _merge(doc, self.extra_config)
        _merge(doc, extra)
        self.config_path.write_text(toml_dumps(doc))

    def start_daemon(self, args: Iterable[str] = ()) -> None:
        self.notify_fields = []
        notify_path = self.workdir / "notify.sock"
        with contextlib.suppress(FileNotFoundError):
            notify_path.unlink()
        notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        notify.bind(str(notify_path))
        notify.settimeout(START_TIMEOUT)
        env = {**os.environ, **self.env, "NOTIFY_SOCKET": str(notify_path), "PYTHONPATH": str(ROOT)}
        env.pop("HALSVC_SOCKET", None)
        log = open(self.daemon_log, "ab")
        self.daemon = subprocess.Popen(
            [sys.executable, "-m", "halsvc", "--config", str(self.config_path), "--socket", str(self.socket),
             *args], cwd=self.workdir, env=env, stdout=log, stderr=log)
        log.close()
        try:
            while "READY=1" not in self.notify_fields:
                try:
                    self.notify_fields += notify.recv(4096).decode().split("\n")
                except TimeoutError:
                    raise RuntimeError(f"daemon not ready; log:\n{self.log()}") from None
        finally:
            notify.close()

    def stop_daemon(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int:
        proc, self.daemon = self.daemon, None
        if proc is None:
            return 0
        if proc.poll() is None:
            proc.send_signal(sig)
        try:
            return proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            raise

    def restart_daemon(self, sig: int = signal.SIGTERM) -> None:
        self.stop_daemon(sig)
        self.start_daemon()

    def stop(self) -> None:
        with contextlib.suppress(Exception):
            self.stop_daemon()
        if self.station is not None and self.station.poll() is None:
            self.station.send_signal(signal.SIGTERM)
            try:
                self.station.wait(30)
            except subprocess.TimeoutExpired:
                self.station.kill()
                self.station.wait()
        if self.station is not None and self.station.stdout is not None:
            self.station.stdout.close()
        self.station = None
        shutil.rmtree(self.workdir, ignore_errors=True)

    def log(self) -> str:
        try:
            return self.daemon_log.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    # --- clients and faults -----------------------------------------------------------------
    def client(self) -> AsyncClient:
        return AsyncClient(self.socket)

    def sync_client(self, timeout: float | None = 30.0) -> Client:
        return Client(self.socket, timeout=timeout)

    async def until_online(self, hal: AsyncClient, *devices: str, **details: Any) -> None:
        """Wait (on status events, not by polling) until each device is online with `details`;
        READY=1 means the daemon serves, while devices still come up on their own."""
        await hal.subscribe("*.status")

        def good(status: dict[str, Any]) -> bool:
            return status["state"] == "online" and all(status.get(k) == v for k, v in details.items())

        pending = {d for d in devices if not good(await hal.call("device.status", {"device": d}))}
        while pending:
            ev = await hal.next_event(lambda e: e["topic"].endswith(".status") and e["device"] in pending,
                                      timeout_s=START_TIMEOUT)
            if good(ev["data"]):
                pending.discard(ev["device"])
        await hal.call("events.unsubscribe", {"topics": ["*.status"]})

    def call_as_nobody(self, *calls: tuple[str, Mapping[str, Any]]) -> list[dict[str, Any]]:
        """Make `calls` from another uid (nobody, no groups), as an unprivileged local program
        would: one connection, and per call {"result": ...} or {"error": [code, reason]}.
        Needs root and setpriv; the daemon's socket must be reachable by others (socket_mode)."""
        self.workdir.chmod(0o755)
        nobody = pwd.getpwnam("nobody")
        probe = (
            "import json, sys\n"
            "from halsvc.client import Client, RpcError\n"
            "c = Client(sys.argv[1])\n"
            "out = []\n"
            "for method, params in json.loads(sys.argv[2]):\n"
            "    try:\n"
            "        out.append({'result': c.call(method, params)})\n"
            "    except RpcError as e:\n"
            "        out.append({'error': [e.code, e.reason]})\n"
            "print(json.dumps(out))\n")
        proc = subprocess.run(
            ["setpriv", f"--reuid={nobody.pw_uid}", f"--regid={nobody.pw_gid}", "--clear-groups",
             sys.executable, "-c", probe, str(self.socket), json.dumps([[m, dict(p)] for m, p in calls])],
            capture_output=True, text=True, timeout=60, env={**os.environ, "PYTHONPATH": str(ROOT)}, cwd="/")
        if proc.returncode != 0:
            raise RuntimeError(f"probe as nobody failed: {proc.stderr}")
        return list(json.loads(proc.stdout))

    def control(self, part: str, action: str, **args: Any) -> dict[str, Any]:
        reply = dict(sim_control(self.simdir / "control.sock", part, action, **args))
        if not reply.get("ok"):
            raise RuntimeError(f"control {part} {action}: {reply}")
        return reply

    def __enter__(self) -> Station:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
