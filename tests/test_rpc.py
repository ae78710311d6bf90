"""The RPC server end to end: the daemon as a process on the simulated panel, raw sockets and the
client library against it. Every case of JSON-RPC 2.0 and DESIGN §2."""

from __future__ import annotations

import asyncio
import json
import socket
from typing import Any

import jsonschema
import pytest
from conftest import run
from harness import Station

from halsvc.client import AsyncClient, RpcError


class Raw:
    """A bare socket speaking lines, to send what no client library would."""

    def __init__(self, st: Station) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(30)
        self.sock.connect(str(st.socket))
        self.buf = b""

    def send(self, data: bytes | str | Any) -> None:
        if not isinstance(data, bytes | str):
            data = json.dumps(data)
        if isinstance(data, str):
            data = data.encode()
        self.sock.sendall(data if data.endswith(b"\n") else data + b"\n")

    def line(self) -> Any:
        while b"\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("closed")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return json.loads(line)

    def answer(self, request: Any) -> Any:
        self.send(request)
        while True:
            msg = self.line()
            if not (isinstance(msg, dict) and msg.get("method") == "event"):
                return msg

    def closed(self) -> bool:
        """True once the daemon closes the connection (reads and drops what is pending)."""
        try:
            while chunk := self.sock.recv(65536):
                self.buf += chunk
        except ConnectionResetError:
            return True
        except TimeoutError:
            return False
        return True

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def raw(panel_station: Station) -> Any:
    conn = Raw(panel_station)
    yield conn
    conn.close()


def call(method: str, params: Any = None, rid: Any = 1) -> dict[str, Any]:
    msg: dict[str, Any] = {"jsonrpc": "2.0", "id": rid, "method": method}
    if params is not None:
        msg["params"] = params
    return msg


def reason(reply: dict[str, Any]) -> str:
    return str(reply["error"]["data"]["reason"])


# --- the JSON-RPC 2.0 cases ---------------------------------------------------------------------
def test_parse_error_has_null_id_and_connection_stays(raw: Raw) -> None:
    reply = raw.answer(b'{"jsonrpc": "2.0", "method": "hal.status", "params": [1, 2')
    assert reply["id"] is None and reply["error"]["code"] == -32700
    assert raw.answer(b"\xff\xfe not utf-8")["error"]["code"] == -32700
    assert "result" in raw.answer(call("hal.status"))


@pytest.mark.parametrize("request_", [
    b"42", b'"x"', b"null", b"[]", b'{"jsonrpc": "1.0", "method": "hal.status", "id": 1}',
    b'{"jsonrpc": "2.0", "id": 1}', b'{"jsonrpc": "2.0", "method": 5, "id": 1}',
    b'{"jsonrpc": "2.0", "method": "hal.status", "id": {"a": 1}}',
    b'{"jsonrpc": "2.0", "method": "hal.status", "id": true}',
    b'{"jsonrpc": "2.0", "method": "hal.status", "id": 1, "extra": 1}',
])
def test_invalid_requests_answer_minus_32600(raw: Raw, request_: bytes) -> None:
    reply = raw.answer(request_)
    assert reply["error"]["code"] == -32600, reply
    assert reason(reply) == "invalid_request"


def test_empty_batch_is_one_invalid_request(raw: Raw) -> None:
    reply = raw.answer(b"[]")
    assert isinstance(reply, dict) and reply["error"]["code"] == -32600 and reply["id"] is None


def test_method_not_found(raw: Raw) -> None:
    reply = raw.answer(call("no.such", {}, 7))
    assert reply["id"] == 7 and reply["error"]["code"] == -32601


@pytest.mark.parametrize("params, field", [
    ({"device": "panel0", "lease_ms": "soon"}, "params.lease_ms"),
    ({"device": "panel0", "lease_ms": 5}, "params.lease_ms"),
    ({}, "params.device"),
    ({"device": "panel0", "colour": "red"}, "params.colour"),
])
def test_invalid_params_name_the_field_and_why(raw: Raw, params: dict[str, Any], field: str) -> None:
    reply = raw.answer(call("device.claim", params))
    assert reply["error"]["code"] == -32602
    assert reply["error"]["data"]["field"] == field
    assert field in reply["error"]["message"]


def test_positional_params_are_invalid_params(raw: Raw) -> None:
    reply = raw.answer(call("hal.status", [1]))
    assert reply["error"]["code"] == -32602


@pytest.mark.parametrize("rid", ["abc", "", 0, -5, 12345678901234567890, 1.5, None, "ünïcode ✓"])
def test_ids_are_echoed_exactly(raw: Raw, rid: Any) -> None:
    raw.send(json.dumps(call("hal.status", {}, rid)))
    reply = raw.line()
    assert reply["id"] == rid and type(reply["id"]) is type(rid)


def test_notifications_get_no_answer(raw: Raw) -> None:
    raw.send({"jsonrpc": "2.0", "method": "hal.status"})
    raw.send({"jsonrpc": "2.0", "method": "no.such"})  # not even an error
    assert raw.answer(call("hal.status", {}, "after"))["id"] == "after"


def test_batch_mixing_calls_notifications_and_errors(raw: Raw) -> None:
    reply = raw.answer([
        call("hal.status", {}, 1),
        {"jsonrpc": "2.0", "method": "hal.status"},
        call("no.such", {}, 2),
        42,
        call("device.status", {"device": "panel0"}, "three"),
    ])
    assert isinstance(reply, list)
    by_id = {r["id"]: r for r in reply}
    assert len(reply) == 4  # the notification has no answer; the 42 has one with id null
    assert "result" in by_id[1] and by_id[2]["error"]["code"] == -32601
    assert by_id[None]["error"]["code"] == -32600
    assert by_id["three"]["result"]["device"] == "panel0"


def test_batch_of_only_notifications_gets_nothing(raw: Raw) -> None:
    raw.send([{"jsonrpc": "2.0", "method": "hal.status"}, {"jsonrpc": "2.0", "method": "hal.status"}])
    assert raw.answer(call("hal.status", {}, "next"))["id"] == "next"


def test_oversized_message_closes_only_that_connection(panel_station: Station) -> None:
    big, other = Raw(panel_station), Raw(panel_station)
    try:
        try:  # the daemon hangs up as soon as the line passes the limit, mid-send
            big.send(b'{"jsonrpc": "2.0", "id": 1, "method": "hal.status", "params": {"x": "'
                     + b"a" * (2 << 20))
        except (BrokenPipeError, ConnectionResetError):
            pass
        reply = big.line()
        assert reason(reply) == "message_too_large" and reply["error"]["code"] == -32600
        assert big.closed()
        assert "result" in other.answer(call("hal.status"))
    finally:
        big.close()
        other.close()


def test_hundreds_of_concurrent_connections(panel_station: Station) -> None:
    async def one(i: int) -> Any:
        async with panel_station.client() as hal:
            return (await hal.call("device.status", {"device": "panel0"}))["state"]

    async def go() -> list[Any]:
        return await asyncio.gather(*(one(i) for i in range(300)))

    states = run(go())
    assert len(states) == 300 and set(states) <= {"online", "busy"}


def test_client_that_stops_reading_is_cut_off_with_overflow(panel_station: Station) -> None:
    """The station runs with send_buffer_bytes = 64 KiB (conftest): a subscriber that never reads
    is disconnected with a final events.overflow, and the others never notice."""
    slow = Raw(panel_station)
    slow.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    slow.send(call("events.subscribe", {"topics": ["*"]}))

    async def flood() -> None:
        async with panel_station.client() as hal:
            for i in range(3000):
                await hal.call("indicator.set", {"name": "status", "pattern": "on" if i % 2 else "off"})
                if i % 200 == 0 and slow.sock.fileno() >= 0:
                    pass
            assert (await hal.call("hal.status"))["connections"] >= 1

    run(flood())
    assert slow.closed()
    lines = [json.loads(x) for x in slow.buf.split(b"\n") if x.strip()]
    assert lines[-1]["params"]["topic"] == "events.overflow"
    seqs = [m["params"]["seq"] for m in lines if m.get("method") == "event"]
    assert seqs == list(range(1, len(seqs) + 1))  # gap-free up to the cut
    slow.close()


# --- discovery ------------------------------------------------------------------------------------
def test_discover_documents_every_method_and_real_results_match_it(panel_station: Station) -> None:
    async def go() -> None:
        async with panel_station.client() as hal:
            doc = await hal.call("rpc.discover")
            methods = {m["name"]: m for m in doc["methods"]}
            for name in ("rpc.discover", "hal.status", "hal.cancel", "events.subscribe", "events.unsubscribe",
                         "device.list", "device.status", "device.claim", "device.release", "device.selftest",
                         "indicator.set", "buzzer.beep"):
                assert name in methods, name
                jsonschema.Draft202012Validator.check_schema(methods[name]["result"]["schema"])
                jsonschema.Draft202012Validator.check_schema(methods[name]["x-params-schema"])
            samples = {
                "hal.status": {}, "device.list": {}, "device.status": {"device": "panel0"},
                "events.subscribe": {"topics": ["gpio.*"]}, "events.unsubscribe": {},
                "device.claim": {"device": "panel0", "lease_ms": 1000},
                "indicator.set": {"name": "card", "pattern": "blink"},
                "buzzer.beep": {"count": 1, "on_ms": 10}, "device.release": {"device": "panel0"},
                "hal.cancel": {"request_id": 999}, "rpc.discover": {},
            }
            for name, params in samples.items():
                jsonschema.validate(params, methods[name]["x-params-schema"])
                result = await hal.call(name, params)
                jsonschema.validate(result, methods[name]["result"]["schema"])
    run(go())


# --- events -----------------------------------------------------------------------------------------
def test_presence_and_door_events_with_gap_free_seq(panel_station: Station) -> None:
    async def go() -> None:
        async with panel_station.client() as hal:
            await hal.subscribe("presence.*", "door.*")
            panel_station.control("gpio_panel", "person_arrives")
            ev = await hal.next_event(lambda e: e["topic"] == "presence.changed")
            assert ev["data"] == {"present": True} and ev["device"] == "panel0"
            panel_station.control("gpio_panel", "door_open")
            door = await hal.next_event(lambda e: e["topic"] == "door.changed")
            assert door["data"]["open"] is True
            assert door["seq"] == ev["seq"] + 1  # nothing else matched: no gap
            status = await hal.call("device.status", {"device": "panel0"})
            assert status["presence"] is True and status["door"] == "open"
            panel_station.control("gpio_panel", "person_leaves")
            panel_station.control("gpio_panel", "door_close")
            left = await hal.next_event(lambda e: e["topic"] == "door.changed")
            assert left["data"]["open"] is False
    run(go())


def test_unsubscribed_topics_are_not_delivered(panel_station: Station) -> None:
    async def go() -> None:
        async with panel_station.client() as hal:
            await hal.subscribe("presence.*", "gpio.status")
            left = await hal.call("events.unsubscribe", {"topics": ["presence.*"]})
            assert left["topics"] == ["gpio.status"]
            panel_station.control("gpio_panel", "person_arrives")
            await hal.call("indicator.set", {"name": "printer", "pattern": "on"})
            ev = await hal.next_event()
            assert ev["topic"] == "gpio.status"  # the presence event before it was not sent
            panel_station.control("gpio_panel", "person_leaves")
    run(go())


def test_progress_goes_only_to_the_caller_and_shares_its_seq(panel_station: Station) -> None:
    async def go() -> None:
        async with panel_station.client() as caller, panel_station.client() as other:
            await other.subscribe("*")
            await caller.subscribe("gpio.status")
            progress: list[dict[str, Any]] = []
            result = await caller.call("buzzer.beep", {"count": 2, "on_ms": 10, "off_ms": 10},
                                       on_progress=progress.append, request_id="beep-1")
            assert result == {"beeps": 2}
            assert [p["data"]["beep"] for p in progress] == [1, 2]
            assert all(p["request_id"] == "beep-1" for p in progress)
            busy = await caller.next_event()  # gpio.status busy/online came before and between
            seqs = sorted([p["seq"] for p in progress] + [busy["seq"]])
            assert seqs[0] >= 1
            await other.call("hal.status")
            while not other._events.empty():
                ev = other._events.get_nowait()
                assert ev is not None and ev["topic"] != "buzzer.beep"
    run(go())


# --- long operations: cancel and timeout really stop the device ---------------------------------------
def test_cancel_reaches_the_driver_and_the_buzzer_stops(panel_station: Station) -> None:
    async def go() -> None:
        async with panel_station.client() as hal:
            started = asyncio.Event()
            beep = asyncio.ensure_future(hal.call("buzzer.beep", {"count": 100, "on_ms": 400, "off_ms": 10},
                                                  request_id="long", on_progress=lambda e: started.set()))
            await asyncio.wait_for(started.wait(), 20)
            assert (await hal.call("hal.cancel", {"request_id": "long"})) == {"cancelled": True}
            with pytest.raises(RpcError) as info:
                await beep
            assert info.value.reason == "cancelled" and info.value.code == -32003
            state = panel_station.control("gpio_panel", "wait", buzzer=True, level=0)
            assert state["buzzer"] == 0.0 and state["beeps"] < 100
            assert (await hal.call("device.status", {"device": "panel0"}))["state"] == "online"
            assert (await hal.call("hal.cancel", {"request_id": "long"})) == {"cancelled": False}
    run(go())


def test_timeout_ms_fails_the_request_and_silences_the_buzzer(panel_station: Station) -> None:
    async def go() -> None:
        async with panel_station.client() as hal:
            with pytest.raises(RpcError) as info:
                await hal.call("buzzer.beep", {"count": 100, "on_ms": 300, "timeout_ms": 200})
            assert info.value.reason == "timeout"
            assert panel_station.control("gpio_panel", "wait", buzzer=True, level=0)["buzzer"] == 0.0
    run(go())


def test_cannot_cancel_another_connections_request(panel_station: Station) -> None:
    async def go() -> None:
        async with panel_station.client() as a, panel_station.client() as b:
            started = asyncio.Event()
            beep = asyncio.ensure_future(a.call("buzzer.beep", {"count": 3, "on_ms": 50}, request_id=5,
                                                on_progress=lambda e: started.set()))
            await asyncio.wait_for(started.wait(), 20)
            assert (await b.call("hal.cancel", {"request_id": 5})) == {"cancelled": False}
            assert (await beep) == {"beeps": 3}
    run(go())


# --- claims -------------------------------------------------------------------------------------------------
def test_claim_blocks_others_until_release_and_dies_with_its_connection(panel_station: Station) -> None:
    async def go() -> None:
        a = await AsyncClient(panel_station.socket).connect()
        async with panel_station.client() as b:
            await a.call("device.claim", {"device": "panel0"})
            with pytest.raises(RpcError) as info:
                await b.call("indicator.set", {"name": "status", "pattern": "on"})
            assert info.value.reason == "device_busy" and info.value.code == -32002
            with pytest.raises(RpcError) as info:
                await b.call("device.release", {"device": "panel0"})
            assert info.value.reason == "not_claimed"
            assert (await a.call("indicator.set", {"name": "status", "pattern": "on"}))["pattern"] == "on"
            assert (await b.call("device.status", {"device": "panel0"}))["claimed"] is True
            await b.subscribe("device.claimed")
            await a.close()  # the claim dies with its connection
            ev = await b.next_event(lambda e: e["topic"] == "device.claimed")
            assert ev["data"]["claimed"] is False
            assert (await b.call("indicator.set", {"name": "status", "pattern": "off"}))["pattern"] == "off"
    run(go())


def test_lease_expires_on_its_own(panel_station: Station) -> None:
    async def go() -> None:
        async with panel_station.client() as a, panel_station.client() as b:
            await b.subscribe("device.claimed")
            await a.call("device.claim", {"device": "panel0", "lease_ms": 200})
            assert (await b.next_event())["data"]["claimed"] is True
            assert (await b.next_event())["data"]["claimed"] is False
            await b.call("indicator.set", {"name": "status", "pattern": "off"})
    run(go())


def test_unknown_device_and_unknown_light(panel_station: Station) -> None:
    async def go() -> None:
        async with panel_station.client() as hal:
            for method, params in (("device.claim", {"device": "nope0"}),
                                   ("indicator.set", {"device": "nope0", "name": "status", "pattern": "on"}),
                                   ("indicator.set", {"name": "nope", "pattern": "on"})):
                with pytest.raises(RpcError) as info:
                    await hal.call(method, params)
                assert info.value.reason == "device_not_found"
    run(go())


def test_selftest_levels(panel_station: Station) -> None:
    async def go() -> None:
        async with panel_station.client() as hal:
            internal = await hal.call("device.selftest", {"device": "panel0"})
            assert internal["passed"] and internal["level"] == "internal"
            before = panel_station.control("gpio_panel", "state")["beeps"]
            external = await hal.call("device.selftest", {"device": "panel0", "level": "external"})
            assert external["passed"]
            assert panel_station.control("gpio_panel", "state")["beeps"] == before + 1
    run(go())


# --- the device model: link loss, reconnect, garbage --------------------------------------------------
def test_unplugged_panel_goes_no_device_and_comes_back(panel_station: Station) -> None:
    async def go() -> None:
        async with panel_station.client() as hal:
            await hal.subscribe("gpio.status")
            panel_station.control("gpio_panel", "unplug")
            await hal.next_event(lambda e: e["data"]["state"] in ("no_device", "starting"))
            with pytest.raises(RpcError) as info:
                await hal.call("indicator.set", {"name": "status", "pattern": "on"})
            assert info.value.reason == "device_offline"
            panel_station.control("gpio_panel", "plug")
            await hal.next_event(lambda e: e["data"]["state"] == "online", timeout_s=30)
            await hal.call("indicator.set", {"name": "status", "pattern": "on"})
            # The level travels the wire on its own; wait for the panel to show it.
            shown = panel_station.control("gpio_panel", "wait", lamp="status", level=1)
            assert shown["lamps"]["status"] == 1.0
    run(go())


def test_garbage_on_the_wire_leaves_the_panel_serving(panel_station: Station) -> None:
    async def go() -> None:
        async with panel_station.client() as hal:
            panel_station.control("gpio_panel", "garbage", lines=8)
            await hal.call("indicator.set", {"name": "payment", "pattern": "on"})
            assert (await hal.call("device.status", {"device": "panel0"}))["state"] == "online"
            shown = panel_station.control("gpio_panel", "wait", lamp="payment", level=1)
            assert shown["lamps"]["payment"] == 1.0
    run(go())
