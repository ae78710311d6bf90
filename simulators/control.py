"""Fault injection on a running simulated station.

    python -m simulators.control [--dir run/sim] PART ACTION ['{"json": "args"}']
"""

from __future__ import annotations

import argparse
import asyncio
import json
import pathlib
import socket
import sys
from collections.abc import Mapping
from typing import Any


def control(sock_path: str | pathlib.Path, part: str, action: str, **args: Any) -> Mapping[str, Any]:
    """Send one control action and return the station's reply (blocking)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.connect(str(sock_path))
        s.sendall(json.dumps({"part": part, "action": action, "args": args}).encode() + b"\n")
        buf = b""
        while not buf.endswith(b"\n"):
            chunk = s.recv(65536)
            if not chunk:
                break
            buf += chunk
    return json.loads(buf)


async def acontrol(sock_path: str | pathlib.Path, part: str, action: str, **args: Any) -> Mapping[str, Any]:
    """Send one control action without blocking the event loop."""
    reader, writer = await asyncio.open_unix_connection(str(sock_path))
    try:
        writer.write(json.dumps({"part": part, "action": action, "args": args}).encode() + b"\n")
        await writer.drain()
        return json.loads(await reader.readline())
    finally:
        writer.close()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m simulators.control", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dir", default="run/sim")
    ap.add_argument("part")
    ap.add_argument("action")
    ap.add_argument("args", nargs="?", default="{}")
    ns = ap.parse_args(argv)
    reply = control(pathlib.Path(ns.dir) / "control.sock", ns.part, ns.action, **json.loads(ns.args))
    print(json.dumps(reply, ensure_ascii=False))
    return 0 if reply.get("ok") else 1


if __name__ == "__main__":
    sys.exit(main())
