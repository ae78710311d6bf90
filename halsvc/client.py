"""Clients of the halsvc socket: `AsyncClient` (asyncio) and `Client` (blocking).

    async with AsyncClient() as hal:
        await hal.subscribe("printer.*")
        result = await hal.call("printer.print", {...}, on_progress=print)
        async for event in hal.events():
            ...

Errors come back as `RpcError` with `.code`, `.reason` and `.data`; a closed or unreachable
daemon as `ConnectionError` (`DaemonUnreachable` when it could not be reached at all).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import pathlib
import socket
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from typing import Any

from halsvc import DEFAULT_SYSTEM_SOCKET

Event = dict[str, Any]
Progress = Callable[[Event], Any]


class RpcError(Exception):
    """An error answer from the daemon."""

    def __init__(self, code: int, message: str, data: Mapping[str, Any] | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.data = dict(data or {})
        self.reason: str = str(self.data.get("reason", "error"))

    def __str__(self) -> str:
        return f"{self.message} [{self.reason}]"


class DaemonUnreachable(ConnectionError):
    """Nothing serves the socket (the daemon is not running, or the path is wrong)."""


def checkout_socket() -> pathlib.Path:
    """run/halsvc.sock of the checkout this package runs from (what `make run` serves)."""
    return pathlib.Path(__file__).resolve().parent.parent / "run" / "halsvc.sock"


def default_socket() -> str:
    """$HALSVC_SOCKET, else the checkout's run/halsvc.sock if it exists, else the system socket."""
    env = os.environ.get("HALSVC_SOCKET")
    if env:
        return env
    local = checkout_socket()
    if local.exists():
        return str(local)
    return DEFAULT_SYSTEM_SOCKET


def _error_of(msg: Mapping[str, Any]) -> RpcError:
    err = msg.get("error") or {}
    return RpcError(int(err.get("code", -32603)), str(err.get("message", "error")), err.get("data"))


class AsyncClient:
    def __init__(self, path: str | os.PathLike[str] | None = None, *, max_events: int = 10_000) -> None:
        self.path = str(path) if path is not None else default_socket()
        self._ids = itertools.count(1)
        self._pending: dict[Any, asyncio.Future[Any]] = {}
        self._progress: dict[Any, Progress] = {}
        self._events: asyncio.Queue[Event | None] = asyncio.Queue(max_events)
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._task: asyncio.Task[None] | None = None
        self.closed_reason: str | None = None
        self.dropped_events = 0

    async def connect(self) -> AsyncClient:
        try:
            self._reader, self._writer = await asyncio.open_unix_connection(self.path, limit=64 << 20)
        except (FileNotFoundError, ConnectionRefusedError) as exc:
            raise DaemonUnreachable(f"no halsvc at {self.path}: {exc.strerror}") from None
        self._task = asyncio.create_task(self._read_loop())
        return self

    async def __aenter__(self) -> AsyncClient:
        return await self.connect()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            with contextlib.suppress(Exception):
                await self._writer.wait_closed()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _read_loop(self) -> None:
        assert self._reader is not None
        try:
            while line := await self._reader.readline():
                self._dispatch(json.loads(line))
            self.closed_reason = "closed by the daemon"
        except (ConnectionError, ValueError) as exc:
            self.closed_reason = f"{type(exc).__name__}: {exc}"
        finally:
            for fut in self._pending.values():
                if not fut.done():
                    fut.set_exception(ConnectionError(self.closed_reason or "connection closed"))
            self._pending.clear()
            with contextlib.suppress(asyncio.QueueFull):
                self._events.put_nowait(None)

    def _dispatch(self, msg: Any) -> None:
        if isinstance(msg, list):
            for item in msg:
                self._dispatch(item)
            return
        if msg.get("method") == "event":
            event = msg.get("params", {})
            rid = event.get("request_id")
            if "request_id" in event and rid in self._progress:
                with contextlib.suppress(Exception):
                    self._progress[rid](event)
                return
            try:
                self._events.put_nowait(event)
            except asyncio.QueueFull:
                self.dropped_events += 1
            return
        fut = self._pending.pop(msg.get("id"), None)
        if fut is not None and not fut.done():
            fut.set_result(msg)
        elif "error" in msg and msg.get("id") is None:
            # An error about the connection itself (message_too_large, overloaded).
            self.closed_reason = str((msg["error"].get("data") or {}).get("reason", "error"))

    async def send(self, line: bytes) -> None:
        """Write raw bytes (tests use this for malformed input)."""
        assert self._writer is not None
        self._writer.write(line)
        await self._writer.drain()

    def next_id(self) -> int:
        return next(self._ids)

    async def request(self, msg: Mapping[str, Any], on_progress: Progress | None = None) -> dict[str, Any]:
        """Send one request object (with its own id) and return the raw answer object."""
        if self._writer is None or self._writer.is_closing():
            raise ConnectionError(self.closed_reason or "not connected")
        rid = msg["id"]
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[rid] = fut
        if on_progress is not None:
            self._progress[rid] = on_progress
        try:
            await self.send(json.dumps(msg, ensure_ascii=False).encode() + b"\n")
            return await fut
        finally:
            self._pending.pop(rid, None)
            self._progress.pop(rid, None)

    async def call(self, method: str, params: Mapping[str, Any] | None = None, *,
                   on_progress: Progress | None = None, request_id: Any = None) -> dict[str, Any]:
        """Call `method`; return its result or raise RpcError."""
        rid = request_id if request_id is not None else self.next_id()
        msg = await self.request(
            {"jsonrpc": "2.0", "id": rid, "method": method, "params": dict(params or {})}, on_progress)
        if "error" in msg:
            raise _error_of(msg)
        return msg["result"]

    async def notify(self, method: str, params: Mapping[str, Any] | None = None) -> None:
        msg = {"jsonrpc": "2.0", "method": method, "params": dict(params or {})}
        await self.send(json.dumps(msg).encode() + b"\n")

    async def subscribe(self, *topics: str) -> list[str]:
        return list((await self.call("events.subscribe", {"topics": list(topics)}))["topics"])

    async def events(self) -> AsyncIterator[Event]:
        """Broadcast events as they arrive, until the connection closes."""
        while True:
            event = await self._events.get()
            if event is None:
                return
            yield event

    async def next_event(self, predicate: Callable[[Event], bool] = lambda e: True,
                         timeout_s: float = 10.0) -> Event:
        """The next event that satisfies `predicate` (others are dropped)."""
        async def wait() -> Event:
            async for event in self.events():
                if predicate(event):
                    return event
            raise ConnectionError(self.closed_reason or "connection closed")
        return await asyncio.wait_for(wait(), timeout_s)


class Client:
    """The blocking client, for scripts and halctl."""

    def __init__(self, path: str | os.PathLike[str] | None = None, timeout: float | None = None) -> None:
        self.path = str(path) if path is not None else default_socket()
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        try:
            self.sock.connect(self.path)
        except (FileNotFoundError, ConnectionRefusedError) as exc:
            self.sock.close()
            raise DaemonUnreachable(f"no halsvc at {self.path}: {exc.strerror}") from None
        self._file = self.sock.makefile("rb")
        self._ids = itertools.count(1)
        self._events: list[Event] = []

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._file.close()
        self.sock.close()

    def _read(self) -> Any:
        line = self._file.readline()
        if not line:
            raise ConnectionError("the daemon closed the connection")
        return json.loads(line)

    def call(self, method: str, params: Mapping[str, Any] | None = None, *,
             on_progress: Progress | None = None) -> dict[str, Any]:
        rid = next(self._ids)
        self.sock.sendall(json.dumps({"jsonrpc": "2.0", "id": rid, "method": method,
                                      "params": dict(params or {})}, ensure_ascii=False).encode() + b"\n")
        while True:
            msg = self._read()
            if isinstance(msg, dict) and msg.get("method") == "event":
                event = msg.get("params", {})
                if event.get("request_id") == rid and "request_id" in event:
                    if on_progress:
                        on_progress(event)
                else:
                    self._events.append(event)
                continue
            if isinstance(msg, dict) and msg.get("id") == rid:
                if "error" in msg:
                    raise _error_of(msg)
                return dict(msg["result"])
            if isinstance(msg, dict) and "error" in msg and msg.get("id") is None:
                raise _error_of(msg)

    def subscribe(self, *topics: str) -> list[str]:
        return list(self.call("events.subscribe", {"topics": list(topics)})["topics"])

    def events(self) -> Iterator[Event]:
        """Events already received, then each new one as it arrives."""
        while True:
            while self._events:
                yield self._events.pop(0)
            msg = self._read()
            if isinstance(msg, dict) and msg.get("method") == "event":
                self._events.append(msg.get("params", {}))
