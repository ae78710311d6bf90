"""RPC round trip and throughput: halsvc against a bare asyncio NDJSON echo server and a dbus-fast
method call through a private dbus-daemon, measured in one run, servers in their own processes.

    python bench/rpc.py [--requests 4000] [--idle-s 30]

Prints p50/p99 round trip and requests/s for 1 and 16 clients, the ratios the foundation issue
targets, time to READY=1, resident memory after start and CPU while idle.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import pathlib
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Awaitable, Callable

from benchjson import emit, figure

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

ECHO_SERVER = textwrap.dedent("""
    import asyncio, sys
    async def handle(r, w):
        while line := await r.readline():
            w.write(line)
            await w.drain()
    async def main():
        srv = await asyncio.start_unix_server(handle, path=sys.argv[1])
        print("ready", flush=True)
        await srv.serve_forever()
    asyncio.run(main())
""")

DBUS_SERVER = textwrap.dedent("""
    import asyncio
    from dbus_fast.aio import MessageBus
    from dbus_fast.service import ServiceInterface, method
    class Echo(ServiceInterface):
        def __init__(self):
            super().__init__("org.halsvc.Bench")
        @method()
        def Echo(self, text: "s") -> "s":
            return text
    async def main():
        bus = await MessageBus().connect()
        bus.export("/bench", Echo())
        await bus.request_name("org.halsvc.Bench")
        print("ready", flush=True)
        await asyncio.Event().wait()
    asyncio.run(main())
""")

BUS_CONF = """<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig><type>session</type><listen>unix:path={path}</listen><auth>EXTERNAL</auth>
<policy context="default"><allow send_destination="*" eavesdrop="true"/><allow eavesdrop="true"/>
<allow own="*"/></policy></busconfig>"""

Call = Callable[[], Awaitable[None]]
BUSES: list[object] = []  # dbus-fast connections, closed before the servers stop


async def measure(make_call: Callable[[], Awaitable[Call]], clients: int, per_client: int
                  ) -> tuple[float, float, float]:
    """(p50 µs, p99 µs, requests/s) over `clients` connections each sending sequentially."""
    calls = [await make_call() for _ in range(clients)]
    for c in calls:  # warm-up
        for _ in range(50):
            await c()
    samples: list[float] = []

    async def worker(c: Call) -> None:
        for _ in range(per_client):
            t = time.perf_counter()
            await c()
            samples.append(time.perf_counter() - t)

    t0 = time.perf_counter()
    await asyncio.gather(*(worker(c) for c in calls))
    wall = time.perf_counter() - t0
    samples.sort()
    return (statistics.median(samples) * 1e6, samples[int(len(samples) * 0.99)] * 1e6,
            clients * per_client / wall)


def line_call(path: str, request: bytes) -> Callable[[], Awaitable[Call]]:
    async def make() -> Call:
        reader, writer = await asyncio.open_unix_connection(path)

        async def call() -> None:
            writer.write(request)
            json.loads(await reader.readline())
        return call
    return make


def dbus_call(address: str) -> Callable[[], Awaitable[Call]]:
    from dbus_fast import Message
    from dbus_fast.aio import MessageBus

    async def make() -> Call:
        bus = await MessageBus(bus_address=address).connect()
        BUSES.append(bus)

        async def call() -> None:
            await bus.call(Message(destination="org.halsvc.Bench", path="/bench",
                                   interface="org.halsvc.Bench", member="Echo", signature="s", body=["ping"]))
        return call
    return make


def start(cmd: list[str], env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, env={**os.environ, **(env or {})})
    assert proc.stdout is not None
    proc.stdout.readline()
    return proc


def proc_stat(pid: int) -> tuple[float, int]:
    """(CPU seconds used, resident KiB)."""
    fields = pathlib.Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    rss = next(int(line.split()[1]) for line in pathlib.Path(f"/proc/{pid}/status").read_text().splitlines()
               if line.startswith("VmRSS:"))
    return cpu, rss


def start_halsvc(tmp: pathlib.Path, config: pathlib.Path, env: dict[str, str] | None = None
                 ) -> tuple[subprocess.Popen[bytes], float]:
    """The daemon, timed from exec to READY=1 on a NOTIFY_SOCKET we bind."""
    notify_path = tmp / "notify.sock"
    if notify_path.exists():
        notify_path.unlink()
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(str(notify_path))
    notify.settimeout(60)
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "halsvc", "--config", str(config), "--socket",
                             str(tmp / "halsvc.sock"), "--log-level", "warning"],
                            env={**os.environ, **(env or {}), "NOTIFY_SOCKET": str(notify_path)}, cwd=ROOT)
    while b"READY=1" not in notify.recv(4096):
        pass
    ready = time.perf_counter() - t0
    notify.close()
    return proc, ready


async def main_async(args: argparse.Namespace) -> None:
    tmp = pathlib.Path(tempfile.mkdtemp(prefix="hal-bench-", dir="/tmp"))
    procs: list[subprocess.Popen[bytes]] = []
    try:
        echo_path = str(tmp / "echo.sock")
        procs.append(start([sys.executable, "-c", ECHO_SERVER, echo_path]))
        bus_path = tmp / "bus.sock"
        (tmp / "bus.conf").write_text(BUS_CONF.format(path=bus_path))
        procs.append(start(["dbus-daemon", "--config-file", str(tmp / "bus.conf"), "--nofork",
                            "--print-address"]))
        address = f"unix:path={bus_path}"
        procs.append(start([sys.executable, "-c", DBUS_SERVER], {"DBUS_SESSION_BUS_ADDRESS": address}))
        config = tmp / "halsvc.toml"
        config.write_text(f'profile = "sim"\n[daemon]\nstate_dir = "{tmp / "state"}"\n')
        hal, ready_s = start_halsvc(tmp, config)
        procs.append(hal)
        cpu0, rss_kib = proc_stat(hal.pid)

        request = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "hal.ping", "params": {}}).encode() + b"\n"
        targets = {"echo": line_call(echo_path, request), "dbus-fast": dbus_call(address),
                   "halsvc": line_call(str(tmp / "halsvc.sock"), request)}
        n = args.requests
        results: dict[tuple[str, int], tuple[float, float, float]] = {}
        for clients in (1, 16):
            for name, make in targets.items():
                results[(name, clients)] = await measure(make, clients, max(200, n // clients))
        print(f"{'server':10} {'clients':>7} {'p50 µs':>9} {'p99 µs':>9} {'req/s':>9}")
        for (name, clients), (p50, p99, rps) in results.items():
            print(f"{name:10} {clients:7d} {p50:9.0f} {p99:9.0f} {rps:9.0f}")
        e1, d1, h1 = (results[(s, 1)] for s in ("echo", "dbus-fast", "halsvc"))
        d16, h16 = results[("dbus-fast", 16)], results[("halsvc", 16)]
        rows = [
            ("p50 round trip, halsvc / echo (1 client)", h1[0] / e1[0], "≤ 1.3"),
            ("throughput, halsvc / dbus-fast (1 client)", h1[2] / d1[2], "≥ 1.5"),
            ("throughput, halsvc / dbus-fast (16 clients)", h16[2] / d16[2], "≥ 2.0"),
        ]
        print()
        for what, value, target in rows:
            print(f"{what:48} {value:6.2f}   target {target}")
        print(f"{'time to READY=1 (no devices)':48} {ready_s * 1000:6.0f} ms")
        print(f"{'resident memory after start (no devices)':48} {rss_kib / 1024:6.1f} MiB")
        _cpu1, _ = proc_stat(hal.pid)
        t0 = time.monotonic()
        c0, _ = proc_stat(hal.pid)
        await asyncio.sleep(args.idle_s)
        c1, _ = proc_stat(hal.pid)
        idle = (c1 - c0) / (time.monotonic() - t0) * 100
        print(f"{f'CPU while idle for {args.idle_s:.0f} s (no devices)':48} {idle:6.2f} %    target < 0.5 %")
        del cpu0
        figures = [figure(what, value, "x", target) for what, value, target in rows]
        figures += [figure("time to READY=1 (no devices)", ready_s * 1000, "ms"),
                    figure("resident memory after start (no devices)", rss_kib / 1024, "MiB"),
                    figure(f"CPU while idle for {args.idle_s:.0f} s (no devices)", idle, "%", "< 0.5")]
        emit("rpc", figures)
    finally:
        for bus in BUSES:
            bus.disconnect()  # type: ignore[attr-defined]
        for p in reversed(procs):
            p.terminate()
        for p in procs:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--requests", type=int, default=4000)
    ap.add_argument("--idle-s", type=float, default=30.0)
    asyncio.run(main_async(ap.parse_args()))


if __name__ == "__main__":
    main()
