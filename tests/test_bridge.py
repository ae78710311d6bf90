"""The WebSocket bridge end to end: the daemon as a process, real websockets clients, and the
Unix socket alongside. Same JSON-RPC, events, claims, cancellation and limits as the socket;
only configured Origins with the per-boot token get in, and they get the kiosk role."""

from __future__ import annotations

import asyncio
import json
import os
import pathlib
import stat
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from conftest import run
from harness import Station
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from halsvc.client import RpcError

CEILING = 60.0  # against hangs only


@pytest.fixture(scope="module")
def bridged() -> Iterator[Station]:
    st = Station(only={"gpio_panel"}, config={
        "bridge": {"enabled": True, "port": 0},
        "daemon": {"max_message_bytes": 4096, "send_buffer_bytes": 65536}}).start()
    URLS[st.workdir] = run(ask_bridge_url(st))
    try:
        yield st
    finally:
        st.stop()


URLS: dict[pathlib.Path, str] = {}


async def ask_bridge_url(st: Station) -> str:
    async with st.client() as hal:
        return str((await hal.call("hal.status"))["bridge"])


def bridge_url(st: Station) -> str:
    return URLS[st.workdir]


def token_of(st: Station) -> str:
    return (st.workdir / "state" / "kiosk.token").read_text().strip()


def origin_of(url: str) -> str:
    return "http://" + url.removeprefix("ws://").split("/", 1)[0]


class Ws:
    """A minimal JSON-RPC client over one WebSocket: answers by id, events in a queue."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.ids = 0
        self.answers: dict[Any, asyncio.Future[Any]] = {}
        self.events: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.other: asyncio.Queue[Any] = asyncio.Queue()
        self.reader = asyncio.ensure_future(self._read())

    async def _read(self) -> None:
        async for raw in self.ws:
            msg = json.loads(raw)
            if isinstance(msg, dict) and msg.get("method") == "event":
                self.events.put_nowait(msg["params"])
            elif isinstance(msg, dict) and msg.get("id") in self.answers:
                self.answers.pop(msg["id"]).set_result(msg)
            else:
                self.other.put_nowait(msg)

    async def send(self, msg: Any) -> None:
        await self.ws.send(json.dumps(msg))

    async def request(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        self.ids += 1
        rid = self.ids
        fut = asyncio.get_running_loop().create_future()
        self.answers[rid] = fut
        await self.send({"jsonrpc": "2.0", "id": rid, "method": method, "params": params or {}})
        return await asyncio.wait_for(fut, CEILING)  # type: ignore[no-any-return]

    async def call(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        reply = await self.request(method, params)
        if "error" in reply:
            err = reply["error"]
            raise RpcError(err["code"], err["message"], err.get("data"))
        return reply["result"]  # type: ignore[no-any-return]

    async def event(self, topic: str) -> dict[str, Any]:
        while True:
            ev = await asyncio.wait_for(self.events.get(), CEILING)
            if ev["topic"] == topic:
                return ev


def ws_connect(st: Station, *, origin: str | None = "", token: str | None = "") -> Any:
    url = bridge_url(st)
    origin = origin_of(url) if origin == "" else origin
    token = token_of(st) if token == "" else token
    query = f"?token={token}" if token is not None else ""
    return connect(url + query, origin=origin, open_timeout=CEILING)  # type: ignore[arg-type]


def test_bridge_speaks_the_sockets_json_rpc(bridged: Station) -> None:
    async def main() -> None:
        async with ws_connect(bridged) as raw:
            ws = Ws(raw)
            assert (await ws.call("hal.ping")) == {"pong": True}
            status = await ws.call("hal.status")
            assert status["role"] == "kiosk" and status["bridge"].startswith("ws://127.0.0.1:")
            doc = await ws.call("rpc.discover")
            assert {"buzzer.beep", "indicator.set", "device.claim"} <= {m["name"] for m in doc["methods"]}
            # A batch is one message each way, with the notification's answer left out.
            await ws.send([{"jsonrpc": "2.0", "id": "a", "method": "hal.ping"},
                           {"jsonrpc": "2.0", "method": "hal.ping"},
                           {"jsonrpc": "2.0", "id": "b", "method": "no.such"}])
            batch = await asyncio.wait_for(ws.other.get(), CEILING)
            assert [r["id"] for r in batch] == ["a", "b"]
            assert batch[1]["error"]["data"]["reason"] == "method_not_found"
            # Garbage is a parse error and the connection keeps serving.
            await raw.send("{not json")
            bad = await asyncio.wait_for(ws.other.get(), CEILING)
            assert bad["error"]["code"] == -32700 and bad["id"] is None
            invalid = await ws.request("indicator.set", {"name": "card", "pattern": "disco"})
            assert invalid["error"]["code"] == -32602 and invalid["error"]["data"]["field"]
            # A pretty-printed request (newlines inside one message) is still one message.
            await raw.send(json.dumps({"jsonrpc": "2.0", "id": "pretty", "method": "hal.ping"}, indent=2))
            pretty = await asyncio.wait_for(ws.other.get(), CEILING)
            assert pretty == {"jsonrpc": "2.0", "id": "pretty", "result": {"pong": True}}
    run(main())


def test_everything_admitted_is_kiosk_only(bridged: Station) -> None:
    """The simulated station makes its owner admin on the socket; over the bridge the same user
    is a kiosk and nothing more."""
    async def main() -> None:
        async with bridged.client() as hal:
            assert (await hal.call("hal.status"))["role"] == "admin"
        async with ws_connect(bridged) as raw:
            reply = await Ws(raw).request("device.selftest", {"device": "panel0"})
            err = reply["error"]
            assert err["code"] == -32001 and err["data"]["reason"] == "permission_denied"
            assert err["data"]["role"] == "kiosk" and err["data"]["needed"] == "technician"
    run(main())


@pytest.mark.parametrize("case", ["wrong_origin", "no_origin", "wrong_token", "no_token"])
def test_wrong_origin_or_token_is_refused_with_403(bridged: Station, case: str) -> None:
    origin = {"wrong_origin": "http://evil.example", "no_origin": None}.get(case, "")
    token = {"wrong_token": "x" * 43, "no_token": None}.get(case, "")

    async def main() -> None:
        with pytest.raises(InvalidStatus) as info:
            async with ws_connect(bridged, origin=origin, token=token):
                pass
        assert info.value.response.status_code == 403
        # Nothing of the refused handshake became a connection.
        async with bridged.client() as hal:
            assert (await hal.call("hal.status"))["connections"] == 1
    run(main())


def test_a_token_in_the_authorization_header_is_admitted(bridged: Station) -> None:
    async def main() -> None:
        url = bridge_url(bridged)
        async with connect(url, origin=origin_of(url),  # type: ignore[arg-type]
                           additional_headers={"Authorization": f"Bearer {token_of(bridged)}"}) as raw:
            assert (await Ws(raw).call("hal.ping")) == {"pong": True}
    run(main())


def test_claims_events_and_release_are_shared_with_the_socket(bridged: Station) -> None:
    async def main() -> None:
        async with bridged.client() as hal:
            await hal.subscribe("device.claimed")
            async with ws_connect(bridged) as raw:
                ws = Ws(raw)
                await ws.call("events.subscribe", {"topics": ["presence.*", "device.claimed"]})
                await ws.call("device.claim", {"device": "panel0", "lease_ms": 60_000})
                claimed = await hal.next_event(lambda e: e["topic"] == "device.claimed", timeout_s=CEILING)
                assert claimed["data"]["claimed"] is True
                with pytest.raises(RpcError) as info:
                    await hal.call("buzzer.beep", {"count": 1})
                assert info.value.reason == "device_busy"
                # A broadcast event reaches the WebSocket, numbered from this connection's seq.
                first = await ws.event("device.claimed")
                bridged.control("gpio_panel", "person_arrives")
                presence = await ws.event("presence.changed")
                assert presence["data"]["present"] is True and presence["seq"] == first["seq"] + 1
                bridged.control("gpio_panel", "person_leaves")
                await ws.event("presence.changed")
            # Closing the WebSocket releases its claim, as a socket disconnect does.
            released = await hal.next_event(lambda e: e["topic"] == "device.claimed", timeout_s=CEILING)
            assert released["data"]["claimed"] is False
            assert (await hal.call("buzzer.beep", {"count": 1, "on_ms": 10, "off_ms": 10}))
    run(main())


def test_cancel_and_progress_over_the_bridge(bridged: Station) -> None:
    async def main() -> None:
        async with ws_connect(bridged) as raw:
            ws = Ws(raw)
            beeping = asyncio.ensure_future(ws.request("buzzer.beep", {"count": 100, "on_ms": 200}))
            progress = await ws.event("buzzer.beep")
            assert progress["request_id"] == 1
            assert (await ws.call("hal.cancel", {"request_id": 1})) == {"cancelled": True}
            reply = await beeping
            assert reply["error"]["data"]["reason"] == "cancelled"
    run(main())


def test_disconnect_cancels_what_is_in_flight(bridged: Station) -> None:
    async def main() -> None:
        async with bridged.client() as hal:
            async with ws_connect(bridged) as raw:
                ws = Ws(raw)
                beeping = asyncio.ensure_future(ws.request("buzzer.beep", {"count": 100, "on_ms": 200}))
                await ws.event("buzzer.beep")
            beeping.cancel()
            # The buzzer is free again at once: the beeping request died with its WebSocket.
            result = await hal.call("buzzer.beep", {"count": 1, "on_ms": 10, "off_ms": 10})
            assert result
    run(main())


def test_a_message_over_the_limit_is_refused_and_closes_only_that_connection(bridged: Station) -> None:
    async def main() -> None:
        async with ws_connect(bridged) as other_raw:
            other = Ws(other_raw)
            async with ws_connect(bridged) as raw:
                big = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "hal.ping",
                                  "params": {"pad": "x" * 5000}})
                await raw.send(big)
                reply = json.loads(await asyncio.wait_for(raw.recv(), CEILING))
                assert reply["error"]["code"] == -32600
                assert reply["error"]["data"] == {"reason": "message_too_large", "limit_bytes": 4096}
                with pytest.raises(ConnectionClosed):
                    await asyncio.wait_for(raw.recv(), CEILING)
            assert (await other.call("hal.ping")) == {"pong": True}
    run(main())


def test_a_client_that_does_not_read_is_disconnected_with_overflow(bridged: Station) -> None:
    """Backpressure as on the socket: requests stop being read, and an unread event stream ends
    in events.overflow and a disconnect, never in daemon memory."""
    async def main() -> None:
        url = bridge_url(bridged)
        async with connect(url + f"?token={token_of(bridged)}", origin=origin_of(url),  # type: ignore[arg-type]
                           max_queue=1) as raw:
            await raw.send(json.dumps({"jsonrpc": "2.0", "id": 1, "method": "events.subscribe",
                                       "params": {"topics": ["*"]}}))
            assert json.loads(await raw.recv())["result"]["topics"] == ["*"]
            # Stop reading: flood the connection with answers it never reads.
            flood = [{"jsonrpc": "2.0", "id": i, "method": "rpc.discover"} for i in range(2, 200)]
            with pytest.raises(ConnectionClosed):
                for msg in flood:
                    await raw.send(json.dumps(msg))
                async with asyncio.timeout(CEILING):
                    while True:  # the close reaches the client once it reads again
                        await raw.recv()
        async with bridged.client() as hal:
            assert (await hal.call("hal.ping")) == {"pong": True}
    run(main())
    assert "does not read; disconnecting it" in bridged.log()


def test_the_token_file_is_0640_and_kept_across_restarts(bridged: Station) -> None:
    path = bridged.workdir / "state" / "kiosk.token"
    mode = stat.S_IMODE(path.stat().st_mode)
    assert mode == 0o640, oct(mode)
    assert len(path.read_text().strip()) >= 40


def test_static_page_is_served_with_a_strict_policy(bridged: Station) -> None:
    base = origin_of(bridge_url(bridged))
    with urllib.request.urlopen(base + "/", timeout=CEILING) as resp:
        body = resp.read().decode()
        assert resp.status == 200 and "<html" in body.lower()
        assert resp.headers["Content-Type"] == "text/html; charset=utf-8"
        assert "default-src 'self'" in resp.headers["Content-Security-Policy"]
    for path in ("/../config.py", "/nope.html", "/%2e%2e/bridge.py", "/__init__.py"):
        with pytest.raises(urllib.error.HTTPError) as info:
            urllib.request.urlopen(base + path, timeout=CEILING)
        assert info.value.code == 404
    req = urllib.request.Request(base + "/", headers={"Host": "rebound.example"})
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(req, timeout=CEILING)
    assert info.value.code == 403


def test_bridge_is_off_by_default_and_its_config_is_checked(tmp_path: pathlib.Path) -> None:
    import subprocess

    from halsvc.config import parse

    assert parse('profile = "sim"\n').bridge.enabled is False
    cfg = tmp_path / "halsvc.toml"
    cfg.write_text('profile = "sim"\n\n[bridge]\nenabled = true\nport = "eighty"\n')
    out = subprocess.run([sys.executable, "-m", "halsvc", "--config", str(cfg), "--check-config"],
                         capture_output=True, text=True, timeout=60,
                         env={**os.environ, "PYTHONPATH": str(pathlib.Path(__file__).parent.parent)})
    assert out.returncode == 78
    assert f"{cfg}:5: bridge.port: must be an integer" in out.stderr
    cfg.write_text('[bridge]\norigins = ["http://127.0.0.1:8765/page"]\n')
    out = subprocess.run([sys.executable, "-m", "halsvc", "--config", str(cfg), "--check-config"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 78 and "bridge.origins" in out.stderr


def test_bridge_token_is_made_once_per_boot_0640_for_its_group(tmp_path: pathlib.Path) -> None:
    """What ExecStartPre=+ runs as root before the daemon: it makes the token when absent and
    keeps it otherwise (so a daemon restart does not lock the running kiosk page out)."""
    import grp
    import subprocess

    token = tmp_path / "run" / "kiosk.token"
    group = grp.getgrgid(os.getgid()).gr_name if os.getuid() else "nogroup"
    cfg = tmp_path / "halsvc.toml"

    def make() -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "halsvc", "--config", str(cfg), "--bridge-token"],
                              capture_output=True, text=True, timeout=60,
                              env={**os.environ, "PYTHONPATH": str(pathlib.Path(__file__).parent.parent)})

    cfg.write_text(f'[bridge]\ntoken_file = "{token}"\ntoken_group = "{group}"\n')
    assert make().returncode == 0 and not token.exists()  # the bridge is off: nothing to make
    cfg.write_text(f'[bridge]\nenabled = true\ntoken_file = "{token}"\ntoken_group = "{group}"\n')
    assert make().returncode == 0
    st = token.stat()
    assert stat.S_IMODE(st.st_mode) == 0o640 and st.st_gid == grp.getgrnam(group).gr_gid
    first = token.read_text()
    assert make().returncode == 0 and token.read_text() == first
    cfg.write_text(f'[bridge]\nenabled = true\ntoken_file = "{tmp_path}"\n')  # a directory
    out = make()
    assert out.returncode == 78 and "cannot read or create the bridge token" in out.stderr
