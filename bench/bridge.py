"""The WebSocket bridge's cost: hal.ping round trips through the bridge against the same daemon's
Unix socket, and against a bare `websockets` echo server (the library alone), in one run, every
server in its own process.

    python bench/bridge.py [--requests 3000] [--clients 16]

Prints p50/p99 round trip (one client, one request at a time) and requests/s with 16 clients.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import pathlib
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

from websockets.asyncio.client import connect  # noqa: E402

WS_ECHO = textwrap.dedent("""
    import asyncio
    from websockets.asyncio.server import serve
    async def echo(ws):
        async for m in ws:
            await ws.send(m)
    async def main():
        async with serve(echo, "127.0.0.1", 0, compression=None) as srv:
            print(next(iter(srv.sockets)).getsockname()[1], flush=True)
            await asyncio.Event().wait()
    asyncio.run(main())
""")
PING = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "hal.ping"})

Roundtrip = Callable[[], Awaitable[None]]


async def measure(n: int, roundtrip: Roundtrip) -> list[float]:
    for _ in range(min(200, n)):  # warm up
        await roundtrip()
    out = []
    for _ in range(n):
        t = time.perf_counter()
        await roundtrip()
        out.append(time.perf_counter() - t)
    return out


async def unix_client(path: str) -> tuple[Roundtrip, Callable[[], None]]:
    r, w = await asyncio.open_unix_connection(path)

    async def rt() -> None:
        w.write(PING.encode() + b"\n")
        await r.readline()
    return rt, w.close


async def ws_client(url: str, origin: str | None) -> tuple[Roundtrip, Callable[[], Awaitable[None]]]:
    ws = await connect(url, origin=origin, compression=None)  # type: ignore[arg-type]

    async def rt() -> None:
        await ws.send(PING)
        await ws.recv()
    return rt, ws.close


async def throughput(clients: int, per_client: int, make: Callable[[], Awaitable[Roundtrip]]) -> float:
    rts = [await make() for _ in range(clients)]

    async def run(rt: Roundtrip) -> None:
        for _ in range(per_client):
            await rt()
    t = time.perf_counter()
    await asyncio.gather(*(run(rt) for rt in rts))
    return clients * per_client / (time.perf_counter() - t)


def pct(xs: list[float], p: float) -> float:
    return sorted(xs)[min(len(xs) - 1, int(p * len(xs)))] * 1000


async def bench(args: argparse.Namespace, sock: str, url: str, origin: str, echo_url: str) -> list[dict]:
    n = args.requests
    unix_rt, unix_close = await unix_client(sock)
    ws_rt, ws_close = await ws_client(url, origin)
    echo_rt, echo_close = await ws_client(echo_url, None)
    # Interleaved in rounds, so a neighbour's load spike hits all three alike.
    samples: dict[str, list[float]] = {"socket": [], "bridge": [], "echo": []}
    for _ in range(5):
        samples["socket"] += await measure(n // 5, unix_rt)
        samples["bridge"] += await measure(n // 5, ws_rt)
        samples["echo"] += await measure(n // 5, echo_rt)
    unix_close()
    await ws_close()
    await echo_close()

    async def make_unix() -> Roundtrip:
        return (await unix_client(sock))[0]

    async def make_ws() -> Roundtrip:
        return (await ws_client(url, origin))[0]

    per = max(50, n // args.clients)
    tp_unix = await throughput(args.clients, per, make_unix)
    tp_ws = await throughput(args.clients, per, make_ws)
    p50 = {k: statistics.median(v) * 1000 for k, v in samples.items()}
    p99 = {k: pct(v, 0.99) for k, v in samples.items()}
    for k in samples:
        print(f"{k:7s} p50 {p50[k]:.3f} ms  p99 {p99[k]:.3f} ms")
    print(f"{args.clients} clients: socket {tp_unix:.0f} req/s, bridge {tp_ws:.0f} req/s")
    return [
        figure("p50 round trip, bridge / socket (1 client)", p50["bridge"] / p50["socket"], "x", "<= 3"),
        figure("p50 round trip, bridge / bare websockets echo", p50["bridge"] / p50["echo"], "x", "<= 2"),
        figure("p99 round trip, bridge / socket", p99["bridge"] / p99["socket"], "x", None),
        figure(f"requests/s, bridge / socket ({args.clients} clients)", tp_ws / tp_unix, "x", ">= 0.3"),
        figure("p50 round trip through the bridge", p50["bridge"], "ms", None),
    ]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--requests", type=int, default=3000)
    ap.add_argument("--clients", type=int, default=16)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="hal-bench-") as tmp:
        d = pathlib.Path(tmp)
        cfg = d / "halsvc.toml"
        cfg.write_text(f'profile = "sim"\n[daemon]\nstate_dir = "{d / "state"}"\nlog_level = "warning"\n'
                       f'[bridge]\nenabled = true\nport = 0\n')
        sock = str(d / "halsvc.sock")
        notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        notify.bind(str(d / "notify.sock"))
        notify.settimeout(60)
        env = {**os.environ, "PYTHONPATH": str(ROOT), "NOTIFY_SOCKET": str(d / "notify.sock")}
        daemon = subprocess.Popen([sys.executable, "-m", "halsvc", "--config", str(cfg), "--socket", sock],
                                  env=env, cwd=d)
        echo = subprocess.Popen([sys.executable, "-c", WS_ECHO], stdout=subprocess.PIPE, text=True)
        try:
            assert echo.stdout is not None
            echo_url = f"ws://127.0.0.1:{echo.stdout.readline().strip()}/"
            while b"READY=1" not in notify.recv(4096):  # the daemon's sd_notify: it serves now
                pass
            from halsvc.client import Client

            with Client(sock, timeout=10) as hal:
                url = str(hal.call("hal.status")["bridge"])
            token = (d / "state" / "kiosk.token").read_text().strip()
            origin = "http://" + url.removeprefix("ws://").split("/", 1)[0]
            figures = asyncio.run(bench(args, sock, f"{url}?token={token}", origin, echo_url))
        finally:
            notify.close()
            for proc in (daemon, echo):
                proc.terminate()
                proc.wait(10)
    emit("bridge", figures)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
