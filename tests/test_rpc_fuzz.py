"""Hypothesis against the RPC decoder: arbitrary bytes, broken UTF-8, deep nesting, huge numbers
and valid-but-wrong requests. In process: only RpcFault ever comes out. Against the daemon:
each line is answered or that connection is closed, and the daemon keeps serving."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from typing import Any

import pytest
from fuzzing import examples
from harness import Station
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from halsvc.rpc import RpcFault, decode_line, parse_request

EXAMPLES = examples(300)  # HALSVC_FUZZ_LONG=1 (make fuzz-long): minutes per target

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20)
methods = st.sampled_from(["hal.status", "device.claim", "device.release", "events.subscribe", "hal.cancel",
                           "indicator.set", "buzzer.beep", "device.selftest", "rpc.discover", "no.such", ""])
requests = st.fixed_dictionaries(
    {"jsonrpc": st.sampled_from(["2.0", "2.0", "1.0", 2]), "method": methods | st.integers()},
    optional={"id": st.none() | st.integers() | st.text(max_size=5) | st.floats(allow_nan=False),
              "params": st.dictionaries(st.sampled_from(["device", "lease_ms", "name", "pattern", "count",
                                                         "topics", "request_id", "timeout_ms", "x"]),
                                        json_values, max_size=4) | json_values})
lines = st.one_of(
    st.binary(max_size=300),
    requests.map(lambda r: json.dumps(r).encode()),
    st.lists(requests, max_size=4).map(lambda r: json.dumps(r).encode()),
    st.integers(1, 200_000).map(lambda n: b"[" * n),  # nesting past any recursion limit
    st.integers(4300, 20_000).map(lambda n: b'{"id": ' + b"9" * n + b"}"),  # past int digit limits
    st.text(max_size=50).map(lambda t: t.encode("utf-8", "surrogatepass")),
)


@settings(max_examples=EXAMPLES, deadline=None)
@given(lines)
def test_decoder_raises_only_rpc_faults(line: bytes) -> None:
    try:
        obj = decode_line(line)
    except RpcFault as fault:
        assert fault.code == -32700
        return
    items = obj if isinstance(obj, list) else [obj]
    for item in items:
        try:
            req = parse_request(item)
        except RpcFault as fault:
            assert fault.code in (-32600, -32602)
        else:
            assert isinstance(req.method, str) and isinstance(req.params, dict)


class Conn:
    def __init__(self, path: str) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(30)
        self.sock.connect(path)
        self.file = self.sock.makefile("rb")

    def roundtrip(self, line: bytes) -> bool:
        """Send one line then a marker request; True if both came back, False if closed."""
        marker = {"jsonrpc": "2.0", "id": "marker", "method": "hal.status"}
        try:
            self.sock.sendall(line.replace(b"\n", b" ") + b"\n" + json.dumps(marker).encode() + b"\n")
            while True:
                raw = self.file.readline()
                if not raw:
                    return False
                msg = json.loads(raw)
                if isinstance(msg, dict) and msg.get("id") == "marker" and "result" in msg:
                    return True
        except (BrokenPipeError, ConnectionResetError):
            return False

    def close(self) -> None:
        self.file.close()
        self.sock.close()


@pytest.fixture(scope="module")
def fuzz_station() -> Iterator[Station]:
    st_ = Station(only={"gpio_panel"}, config={"daemon": {"max_message_bytes": 65536}}).start()
    try:
        yield st_
    finally:
        st_.stop()


@settings(max_examples=EXAMPLES // 3, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.lists(lines, min_size=1, max_size=5))
def test_daemon_answers_or_closes_and_keeps_serving(fuzz_station: Station, batch: list[bytes]) -> None:
    conn = Conn(str(fuzz_station.socket))
    try:
        for line in batch:
            if not conn.roundtrip(line):
                conn.close()
                conn = Conn(str(fuzz_station.socket))
    finally:
        conn.close()
    fresh = Conn(str(fuzz_station.socket))
    try:
        assert fresh.roundtrip(b"")
    finally:
        fresh.close()
    # Release whatever claims the fuzz made (they die with their connections anyway).


def test_daemon_survived_the_fuzz(fuzz_station: Station) -> None:
    assert fuzz_station.daemon is not None and fuzz_station.daemon.poll() is None
    with fuzz_station.sync_client() as hal:
        status: dict[str, Any] = hal.call("hal.status")
    assert status["devices"][0]["state"] in ("online", "busy")
    assert "Traceback" not in fuzz_station.log()
