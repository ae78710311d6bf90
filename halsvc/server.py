"""The RPC server: one asyncio Protocol per client connection, NDJSON JSON-RPC 2.0 (DESIGN §2).

Why a Protocol and not streams: a request line is handled straight from `data_received`, with
no reader task and no extra buffer copy; that is what keeps a round trip close to a bare echo.

Memory is bounded per connection whatever the client does: a line over the size limit closes
that connection; requests stop being read while the client does not read its answers; and an
event stream that the client does not drain ends with `events.overflow` and a disconnect.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import fnmatch
import functools
import logging
import socket
import struct
import time
import traceback
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from drivers.base import Driver, HalError, OperationContext, RpcMethod
from halsvc import __version__
from halsvc.config import ROLE_RANK, Config
from halsvc.registry import Registry
from halsvc.rpc import (
    INTERNAL_ERROR,
    INVALID_PARAMS,
    INVALID_REQUEST,
    RpcFault,
    decode_line,
    encode,
    error_response,
    parse_request,
    response,
)
from halsvc.schema import SchemaError, validate

log = logging.getLogger("halsvc.rpc")

MAX_BATCH = 256
TIMEOUT_MS = {"type": "integer", "minimum": 1, "maximum": 86_400_000,
              "description": "fail with `timeout` if the request has not finished by then"}
DEVICE_PARAM = {"type": "string", "description": "device id; default: the first device offering the method"}
Handler = Callable[["Connection", dict[str, Any], OperationContext], Awaitable[Mapping[str, Any]]]


@dataclass
class Method:
    """A dispatchable method: a built-in (handler) or a driver method (driver_method)."""

    spec: RpcMethod
    schema: dict[str, Any]  # params schema as validated: the spec's plus device / timeout_ms
    handler: Handler | None = None
    driver_method: bool = False


def _effective_schema(spec: RpcMethod, driver_method: bool) -> dict[str, Any]:
    schema = dict(spec.params)
    props = dict(schema.get("properties", {}))
    props.setdefault("timeout_ms", TIMEOUT_MS)
    if driver_method:
        props.setdefault("device", DEVICE_PARAM)
    schema["properties"] = props
    schema.setdefault("type", "object")
    return schema


def now_iso() -> str:
    return datetime.datetime.now().astimezone().isoformat(timespec="milliseconds")


def peer_credentials(sock: socket.socket | None) -> tuple[int, int, int, set[int]]:
    """(pid, uid, gid, all gids) of the peer, from SO_PEERCRED and /proc/<pid>/status."""
    if sock is None or sock.family != socket.AF_UNIX:
        return 0, -1, -1, set()
    creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    pid, uid, gid = struct.unpack("3i", creds)
    gids = {gid}
    with contextlib.suppress(OSError, ValueError):
        with open(f"/proc/{pid}/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Groups:"):
                    gids.update(int(g) for g in line.split()[1:])
                    break
    return pid, uid, gid, gids


class Connection(asyncio.Protocol):
    """One client. Requests are read from `data_received`; each runs as its own task."""

    _ids = 0

    def __init__(self, server: Server) -> None:
        Connection._ids += 1
        self.id = Connection._ids
        self.server = server
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.seq = 0
        self.topics: list[str] = []
        self.inflight: dict[Any, asyncio.Task[Any]] = {}
        self.cancel_reasons: dict[Any, HalError] = {}
        self.closing = False
        self.role = "public"
        self.uid = -1
        self.pid = 0

    # --- asyncio.Protocol -----------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        # A message-framed transport (the WebSocket bridge) states its peer's role itself;
        # a Unix socket's comes from the peer's uid and groups.
        role = transport.get_extra_info("halsvc_role")
        if role is not None:
            self.role = str(role)
        else:
            self.pid, self.uid, _gid, gids = peer_credentials(transport.get_extra_info("socket"))
            self.role = self.server.config.role_of(self.uid, gids) if self.uid >= 0 else "public"
        # Small high-water mark: answers are small, so a client that does not read is noticed
        # after a few of them and its requests stop being read (backpressure, not memory).
        transport.set_write_buffer_limits(high=256 * 1024)
        if not self.server.admit(self):
            self.send(error_response(None, HalError("overloaded", "too many connections; try again")))
            self.close()

    def data_received(self, data: bytes) -> None:
        if self.closing:
            return
        buf = self.buf
        buf += data
        limit = self.server.config.max_message_bytes
        start = 0
        while True:
            end = buf.find(b"\n", start)
            if end < 0:
                break
            if end - start > limit:
                return self._too_large()
            line = bytes(buf[start:end])
            start = end + 1
            self._on_line(line)
            if self.closing:
                return
        if start:
            del buf[:start]
        if len(buf) > limit:
            self._too_large()

    def message_received(self, data: bytes) -> None:
        """One whole message from a message-framed transport (a WebSocket frame): the same
        limit and handling as one line of the socket."""
        if self.closing:
            return
        if len(data) > self.server.config.max_message_bytes:
            self._too_large()
            return
        self._on_line(data)

    def eof_received(self) -> bool | None:
        # The client has sent everything: let its requests finish, then close.
        self._half_closed = True
        if not self.inflight:
            self.close()
        return True

    def pause_writing(self) -> None:
        if self.transport is not None and not self.closing:
            with contextlib.suppress(RuntimeError):
                self.transport.pause_reading()

    def resume_writing(self) -> None:
        if self.transport is not None and not self.closing:
            with contextlib.suppress(RuntimeError):
                self.transport.resume_reading()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closing = True
        for key, task in list(self.inflight.items()):
            self.cancel_reasons[key] = HalError("cancelled", "the client disconnected")
            task.cancel()
        self.server.forget(self)

    # --- output ---------------------------------------------------------------------------
    def send(self, msg: Any) -> None:
        transport = self.transport
        if transport is None or self.closing or transport.is_closing():
            return
        try:
            data = encode(msg)
        except (TypeError, ValueError) as exc:  # a driver returned something that is not JSON
            log.error("unencodable reply: %s", type(exc).__name__)
            rid = msg.get("id") if isinstance(msg, dict) else None
            data = encode(error_response(rid, RpcFault(INTERNAL_ERROR, "internal error: reply not JSON",
                                                       "internal_error")))
        transport.write(data)
        if transport.get_write_buffer_size() > self.server.config.send_buffer_bytes:
            self._overflow()

    def event(self, topic: str, device: str | None, data: Mapping[str, Any], request_id: Any = None,
              *, progress: bool = False) -> None:
        self.seq += 1
        params: dict[str, Any] = {"topic": topic, "device": device, "seq": self.seq, "time": now_iso(),
                                  "data": data}
        if progress:
            params["request_id"] = request_id
        self.send({"jsonrpc": "2.0", "method": "event", "params": params})

    def wants(self, topic: str) -> bool:
        return any(fnmatch.fnmatchcase(topic, pattern) for pattern in self.topics)

    def close(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()
        self.closing = True

    def _overflow(self) -> None:
        transport = self.transport
        assert transport is not None
        log.warning("client %d does not read; disconnecting it", self.id,
                    extra={"reason": "events_overflow"})
        self.seq += 1
        final = {"jsonrpc": "2.0", "method": "event", "params": {
            "topic": "events.overflow", "device": None, "seq": self.seq, "time": now_iso(),
            "data": {"reason": "overflow", "limit_bytes": self.server.config.send_buffer_bytes}}}
        transport.write(encode(final))
        self.closing = True
        transport.close()
        # close() waits for the buffer to drain; a client that never reads gets aborted.
        asyncio.get_running_loop().call_later(2.0, transport.abort)

    def _too_large(self) -> None:
        limit = self.server.config.max_message_bytes
        self.buf.clear()
        self.send(error_response(None, RpcFault(
            INVALID_REQUEST, f"message larger than {limit} bytes", "message_too_large", limit_bytes=limit)))
        log.info("client %d sent a message over %d bytes; closed", self.id, limit,
                 extra={"reason": "message_too_large"})
        self.close()

    # --- requests -------------------------------------------------------------------------
    def _on_line(self, line: bytes) -> None:
        if not line.strip():
            return
        try:
            obj = decode_line(line)
        except RpcFault as fault:
            self.send(error_response(None, fault))
            return
        if isinstance(obj, list):
            if not obj:
                self.send(error_response(None, RpcFault(INVALID_REQUEST, "empty batch", "invalid_request")))
            elif len(obj) > MAX_BATCH:
                self.send(error_response(None, RpcFault(
                    INVALID_REQUEST, f"batch of more than {MAX_BATCH} requests", "invalid_request")))
            else:
                self._spawn(self._batch(obj), None)
            return
        self._single(obj)

    def _single(self, obj: Any) -> None:
        try:
            req = parse_request(obj)
        except RpcFault as fault:
            self.send(error_response(fault.data.get("id"), fault))
            return
        if len(self.inflight) >= self.server.config.max_inflight:
            if not req.is_notification:
                self.send(error_response(req.id, HalError(
                    "overloaded", f"more than {self.server.config.max_inflight} requests in flight")))
            return
        self._spawn(self._answer(req.method, req.params, req.id, req.is_notification), req.id,
                    None if req.is_notification else req.id)

    def _spawn(self, coro: Awaitable[Any], rid: Any, key: Any = None) -> None:
        task = asyncio.ensure_future(coro)
        tkey = key if key is not None else ("_task", id(task))
        if isinstance(tkey, float) and tkey.is_integer():
            tkey = int(tkey)
        if tkey in self.inflight:  # a duplicate id in flight: the newer one is not cancellable
            tkey = ("_task", id(task))
        self.inflight[tkey] = task
        task.add_done_callback(functools.partial(self._done, tkey))

    def _done(self, key: Any, task: asyncio.Task[Any]) -> None:
        self.inflight.pop(key, None)
        self.cancel_reasons.pop(key, None)
        if not task.cancelled() and task.exception() is not None:
            log.error("request task failed: %s", type(task.exception()).__name__)
        if getattr(self, "_half_closed", False) and not self.inflight:
            self.close()

    async def _answer(self, method: str, params: dict[str, Any], rid: Any, notification: bool) -> None:
        reply = await self.server.call(self, method, params, rid)
        if not notification:
            self.send(reply)

    async def _batch(self, items: list[Any]) -> None:
        """Each element is a request of its own; the answers go back as one array, without the
        notifications' (and nothing at all when every element was a notification)."""
        calls: list[Awaitable[dict[str, Any] | None]] = []
        for obj in items:
            try:
                req = parse_request(obj)
            except RpcFault as fault:
                calls.append(_ready(error_response(fault.data.get("id"), fault)))
                continue
            calls.append(self._batched(req.method, req.params, req.id, req.is_notification))
        replies = [r for r in await asyncio.gather(*calls) if r is not None]
        if replies:
            self.send(replies)

    async def _batched(self, method: str, params: dict[str, Any], rid: Any,
                       notification: bool) -> dict[str, Any] | None:
        reply = await self.server.call(self, method, params, rid)
        return None if notification else reply


async def _ready(value: Any) -> Any:
    return value


class Server:
    """Connections, the method table (built-ins + every configured driver's) and the event bus."""

    def __init__(self, config: Config, registry_factory: Callable[[Callable[..., None]], Registry]
                 ) -> None:
        self.config = config
        self.started = time.monotonic()
        self.connections: dict[int, Connection] = {}
        self.registry = registry_factory(self.publish)
        self.methods: dict[str, Method] = {}
        self._servers: list[asyncio.AbstractServer] = []
        self.hotplug: Any = None  # the HotplugMonitor, when any device has a `match`
        self.bridge: Any = None  # the WebSocket bridge (halsvc/bridge.py), when enabled
        self.usage: Any = None  # the UsageStore (halsvc/usage.py), when usage counting is on
        self.stopping = False
        from halsvc import builtins  # the built-ins need Server's names; import late

        for spec, handler in builtins.BUILTINS:
            self.methods[spec.name] = Method(spec, _effective_schema(spec, False), handler=handler)
        for name, (_cls, spec) in self.registry.methods().items():
            if name in self.methods:
                raise ValueError(f"driver method {name} clashes with a built-in")
            self.methods[name] = Method(spec, _effective_schema(spec, True), driver_method=True)

    # --- connections ----------------------------------------------------------------------
    async def serve_socket(self, sock: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_unix_server(lambda: Connection(self), sock=sock, backlog=256)
        self._servers.append(server)

    async def serve_bridge(self) -> None:
        """The browser bridge: WebSocket connections that are Connections like the socket's."""
        from halsvc.bridge import Bridge

        self.bridge = Bridge(self, self.config)
        await self.bridge.start()

    def admit(self, conn: Connection) -> bool:
        if self.stopping or len(self.connections) >= self.config.max_connections:
            return False
        self.connections[conn.id] = conn
        return True

    def forget(self, conn: Connection) -> None:
        if self.connections.pop(conn.id, None) is not None:
            self.registry.release_all(conn.id)

    # --- events ---------------------------------------------------------------------------
    def publish(self, topic: str, device: str | None, data: Mapping[str, Any]) -> None:
        """A broadcast event to every connection subscribed to its topic (never citizen data)."""
        for conn in list(self.connections.values()):
            if conn.topics and conn.wants(topic):
                conn.event(topic, device, data)

    # --- dispatch -------------------------------------------------------------------------
    async def call(self, conn: Connection, name: str, params: dict[str, Any], rid: Any) -> dict[str, Any]:
        """Run one request to its reply object (result or error); never raises. Every reply of a
        driver operation is counted for the usage figures (halsvc/usage.py)."""
        t0 = time.monotonic()
        reply = await self._dispatch(conn, name, params, rid)
        if self.usage is not None:
            try:
                self.usage.observe(name, reply, time.monotonic() - t0)
            except Exception as exc:  # counting must never cost a reply
                log.error("usage counting failed: %s", type(exc).__name__, extra={"reason": "internal_error"})
        return reply

    async def _dispatch(self, conn: Connection, name: str, params: dict[str, Any], rid: Any
                        ) -> dict[str, Any]:
        key = int(rid) if isinstance(rid, float) and rid.is_integer() else rid
        try:
            method = self.methods.get(name)
            if method is None:
                raise RpcFault(-32601, f"method not found: {name}", "method_not_found")
            spec = method.spec
            if ROLE_RANK.get(conn.role, 0) < ROLE_RANK[spec.role]:
                raise HalError("permission_denied", f"{name} needs the {spec.role} role; this client is "
                               f"{conn.role} (uid {conn.uid})", needed=spec.role, role=conn.role)
            try:
                validate(method.schema, params)
            except SchemaError as exc:
                raise RpcFault(INVALID_PARAMS, f"invalid params: {exc}", "invalid_params",
                               field=exc.path) from None
            if self.stopping:
                raise HalError("shutting_down", "the daemon is stopping")
            params = dict(params)
            timeout_ms = params.pop("timeout_ms", None)
            loop = asyncio.get_running_loop()
            deadline = loop.time() + timeout_ms / 1000 if timeout_ms is not None else None
            device_id = params.pop("device", None) if method.driver_method else None
            driver: Driver | None = None
            if method.driver_method:
                driver = self.registry.resolve(spec, device_id)
                if not spec.readonly:
                    self.registry.check_claim(driver.device_id, conn.id)
            progress_device = driver.device_id if driver else params.get("device")

            def progress(topic: str, data: Mapping[str, Any]) -> None:
                conn.event(topic, progress_device, data, rid, progress=True)

            ctx = OperationContext(request_id=rid, deadline=deadline, progress=progress, conn_id=conn.id)
            try:
                async with asyncio.timeout_at(deadline):
                    if driver is not None:
                        result = await getattr(driver, spec.attr)(params, ctx)
                    else:
                        assert method.handler is not None
                        result = await method.handler(conn, params, ctx)
            except TimeoutError:
                raise HalError("timeout", f"{name} did not finish within {timeout_ms} ms") from None
            return response(rid, result)
        except asyncio.CancelledError:
            reason = conn.cancel_reasons.pop(key, None)
            task = asyncio.current_task()
            if reason is None or task is None:
                raise
            task.uncancel()
            return error_response(rid, reason)
        except (RpcFault, HalError) as exc:
            return error_response(rid, exc)
        except Exception as exc:  # a driver bug: answer, log where, keep serving
            tb = "".join(traceback.format_tb(exc.__traceback__)[-3:])
            # The exception's text may hold device data; its type and place are enough.
            log.error("%s raised %s at\n%s", name, type(exc).__name__, tb, extra={"reason": "internal_error"})
            fault = RpcFault(INTERNAL_ERROR, f"internal error in {name}", "internal_error")
            return error_response(rid, fault)

    def cancel(self, conn: Connection, rid: Any, reason: HalError) -> bool:
        key = int(rid) if isinstance(rid, float) and rid.is_integer() else rid
        try:
            task = conn.inflight.get(key)
        except TypeError:  # an unhashable id was never in flight
            return False
        if task is None or task.done():
            return False
        conn.cancel_reasons[key] = reason
        task.cancel()
        return True

    # --- lifecycle ------------------------------------------------------------------------
    async def stop(self, grace: float) -> None:
        """Stop accepting, fail what is in flight with `shutting_down`, stop the devices."""
        self.stopping = True
        for srv in self._servers:
            srv.close()
        if self.bridge is not None:
            self.bridge.close()
        tasks = []
        for conn in list(self.connections.values()):
            for key in list(conn.inflight):
                if self.cancel(conn, key, HalError("shutting_down", "the daemon is stopping")):
                    tasks.append(conn.inflight[key])
        if tasks:
            await asyncio.wait(tasks, timeout=grace)
        await self.registry.stop()
        for conn in list(self.connections.values()):
            conn.close()
        waits = [srv.wait_closed() for srv in self._servers]
        if self.bridge is not None:
            waits.append(self.bridge.wait_closed())
        for wait in waits:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(wait, 0.5)

    def status(self) -> dict[str, Any]:
        return {
            "version": __version__,
            "uptime_s": round(time.monotonic() - self.started, 3),
            "connections": len(self.connections),
            "devices": [self.device_status(d) for d in self.registry.devices.values()],
            **({"bridge": self.bridge.url} if self.bridge is not None else {}),
        }

    def device_status(self, driver: Driver) -> dict[str, Any]:
        return {**driver.status(), "claimed": driver.device_id in self.registry.claims}
