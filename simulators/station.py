"""The simulated station: every simulator that exists, started together, and the daemon config
that wires halsvc to them.

    python -m simulators.station --dir run/sim [--only gpio_panel,escpos_printer]
        [--part-option escpos_printer.transport=tcp ...] [-- CMD ...]

writes `<dir>/halsvc.toml` (profile `sim` plus one table per simulated device), serves fault
injection on `<dir>/control.sock` (see `simulators.control`) and prints `ready <config>` when
everything is up. With a command after `--` (what `make run` does with the daemon), it runs it
with the parts' environment once the station is ready, and stops everything when it exits.
SIGINT/SIGTERM stops the command (SIGTERM, then SIGKILL after 10 s) and every simulator.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib
import json
import os
import pathlib
import signal
import socket
import sys
from collections.abc import Mapping
from typing import Any

from simulators.base import StationPart, UnknownAction
from simulators.tomlw import dumps as toml_dumps

# Every simulator the station knows, in start order. A part whose module is not there yet is
# skipped, so the station grows with each device issue.
PARTS = ("gpio_panel", "cccd_card", "escpos_printer", "ble_station", "serial_scale", "payment_terminal")


async def start_parts(workdir: pathlib.Path, only: set[str] | None = None,
                      options: Mapping[str, Mapping[str, Any]] | None = None) -> list[StationPart]:
    parts: list[StationPart] = []
    for name in PARTS:
        if only is not None and name not in only:
            continue
        try:
            module = importlib.import_module(f"simulators.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"simulators.{name}":
                continue
            raise
        start = getattr(module, "start_part", None)
        if start is None:
            continue
        parts.append(await start(workdir, dict((options or {}).get(name, {}))))
    return parts


def station_config(parts: list[StationPart], workdir: pathlib.Path) -> dict[str, Any]:
    devices: dict[str, Any] = {}
    for part in parts:
        devices.update(part.devices)
    return {
        "profile": "sim",
        "daemon": {"state_dir": str(workdir / "state")},
        "devices": devices,
    }


class ControlServer:
    """NDJSON control socket: {"part", "action", "args"} -> {"ok": true, ...} | {"ok": false, "error"}."""

    def __init__(self, parts: list[StationPart]) -> None:
        self.parts = {p.name: p for p in parts}

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while line := await reader.readline():
                reply = await self.dispatch(line)
                writer.write(json.dumps(reply).encode() + b"\n")
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    async def dispatch(self, line: bytes) -> dict[str, Any]:
        try:
            msg = json.loads(line)
            part = self.parts[msg["part"]]
        except (ValueError, KeyError, TypeError):
            return {"ok": False, "error": f"unknown part; parts: {sorted(self.parts)}"}
        try:
            result = await part.control(str(msg.get("action", "")), dict(msg.get("args") or {}))
        except UnknownAction as exc:
            return {"ok": False, "error": f"unknown action {exc}; actions: {list(part.actions)}"}
        except Exception as exc:  # a broken fault injection must not stop the station
            return {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
        return {"ok": True, **dict(result)}


def _notify_listener(path: pathlib.Path, on_ready: str | None) -> socket.socket:
    """A NOTIFY_SOCKET for the child, as systemd gives one: on READY=1 print `on_ready`."""
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.setblocking(False)

    def readable() -> None:
        with contextlib.suppress(OSError):
            fields = sock.recv(4096).decode(errors="replace").split("\n")
            if "READY=1" in fields and on_ready:
                print(on_ready, flush=True)

    asyncio.get_running_loop().add_reader(sock.fileno(), readable)
    return sock


async def _run_child(command: list[str], env: Mapping[str, str], stop: asyncio.Event,
                     workdir: pathlib.Path, on_ready: str | None) -> int:
    """Run `command` until it exits, or until `stop` (then SIGTERM, and SIGKILL after 10 s)."""
    notify_path = workdir / "notify.sock"
    notify = _notify_listener(notify_path, on_ready)
    try:
        return await _supervise(command, {**env, "NOTIFY_SOCKET": str(notify_path)}, stop)
    finally:
        asyncio.get_running_loop().remove_reader(notify.fileno())
        notify.close()
        with contextlib.suppress(FileNotFoundError):
            notify_path.unlink()


async def _supervise(command: list[str], env: Mapping[str, str], stop: asyncio.Event) -> int:
    proc = await asyncio.create_subprocess_exec(*command, env={**os.environ, **env})
    waiter = asyncio.ensure_future(proc.wait())
    stopper = asyncio.ensure_future(stop.wait())
    await asyncio.wait({waiter, stopper}, return_when=asyncio.FIRST_COMPLETED)
    stopper.cancel()
    if not waiter.done():
        with contextlib.suppress(ProcessLookupError):
            proc.terminate()
        try:
            await asyncio.wait_for(asyncio.shield(waiter), 10)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await waiter
    return int(waiter.result())


def parse_part_options(items: list[str]) -> dict[str, dict[str, Any]]:
    """`PART.KEY=VALUE` items -> {part: {key: value}}; a value that parses as JSON (numbers,
    true/false, lists) is taken as such, anything else as a string."""
    options: dict[str, dict[str, Any]] = {}
    for item in items:
        name, sep, value = item.partition("=")
        part, dot, key = name.partition(".")
        if not sep or not dot or not part or not key:
            raise ValueError(f"--part-option {item!r}: expected PART.KEY=VALUE")
        try:
            parsed: Any = json.loads(value)
        except ValueError:
            parsed = value
        options.setdefault(part, {})[key] = parsed
    return options


async def serve(workdir: pathlib.Path, only: set[str] | None, command: list[str] | None = None,
                on_ready: str | None = None,
                options: Mapping[str, Mapping[str, Any]] | None = None) -> int:
    workdir.mkdir(parents=True, exist_ok=True)  # noqa: ASYNC240 - once, before anything runs
    parts = await start_parts(workdir, only, options)
    env = {k: v for p in parts for k, v in p.env.items()}
    config = station_config(parts, workdir)
    config_path = workdir / "halsvc.toml"
    tmp = config_path.with_suffix(".tmp")
    tmp.write_text(toml_dumps(config))
    (workdir / "station.env").write_text("".join(f"{k}={v}\n" for k, v in env.items()))
    control_path = workdir / "control.sock"
    with contextlib.suppress(FileNotFoundError):
        control_path.unlink()
    server = await asyncio.start_unix_server(ControlServer(parts).handle, path=str(control_path))
    os.replace(tmp, config_path)  # appears only when complete: waiters watch for it
    print(f"ready {config_path}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    rc = 0
    try:
        if command:
            rc = await _run_child(command, env, stop, workdir, on_ready)
        else:
            await stop.wait()
    finally:
        server.close()
        for part in reversed(parts):
            with contextlib.suppress(Exception):
                await part.stop()
        with contextlib.suppress(FileNotFoundError):
            control_path.unlink()
    return rc


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m simulators.station", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dir", default="run/sim", help="work dir for sockets, ptys and the config")
    ap.add_argument("--only", help=f"comma-separated parts to start (of {', '.join(PARTS)})")
    ap.add_argument("--part-option", action="append", default=[], metavar="PART.KEY=VALUE",
                    help="an option for one part, e.g. escpos_printer.transport=tcp (repeatable)")
    ap.add_argument("--ready-message", help="printed when the command reports READY=1 (sd_notify)")
    ap.add_argument("command", nargs=argparse.REMAINDER, help="-- CMD ARGS: run once the station is ready")
    args = ap.parse_args(argv)
    only = {p for p in args.only.split(",") if p} if args.only is not None else None
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    try:
        options = parse_part_options(args.part_option)
    except ValueError as exc:
        ap.error(str(exc))
    try:
        return asyncio.run(serve(pathlib.Path(args.dir).resolve(), only, command or None,
                                 args.ready_message, options))
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
