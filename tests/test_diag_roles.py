"""The diagnostics are for technicians: a real client of another uid (setpriv, socat), which
the station's roles make a kiosk, is refused every diag.* method and sees the daemon's status;
and the log ring keeps what reached the journal, rate limit included."""

from __future__ import annotations

import io
import json
import logging
import os
import shutil
import subprocess
from collections.abc import Iterator

import pytest
from harness import Station

from halsvc import logs

NOBODY = 65534
METHODS = ("diag.usage", "diag.logs", "diag.info", "diag.journals")


@pytest.fixture(scope="module")
def open_station() -> Iterator[Station]:
    st = Station(only={"gpio_panel"}, config={"daemon": {"socket_mode": "0666"}})
    try:
        st.start()
        os.chmod(st.workdir, 0o755)
        yield st
    finally:
        st.stop()


def as_nobody(st: Station, requests: list[dict[str, object]]) -> list[dict[str, object]]:
    lines = "".join(json.dumps(r) + "\n" for r in requests)
    out = subprocess.run(["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups",
                          "socat", "-t", "60", "-", f"UNIX-CONNECT:{st.socket}"],
                         input=lines, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return [json.loads(line) for line in out.stdout.splitlines()]


@pytest.mark.skipif(shutil.which("socat") is None, reason="socat not installed")
def test_a_kiosk_is_refused_the_diagnostics(open_station: Station) -> None:
    requests = [{"jsonrpc": "2.0", "id": i, "method": m, "params": {}} for i, m in enumerate(METHODS)]
    requests.append({"jsonrpc": "2.0", "id": 99, "method": "hal.status", "params": {}})
    replies = {r["id"]: r for r in as_nobody(open_station, requests)}
    for i, _method in enumerate(METHODS):
        error = replies[i]["error"]
        assert error["code"] == -32001 and error["data"]["reason"] == "permission_denied"  # type: ignore[index]
        assert error["data"]["needed"] == "technician" and error["data"]["role"] == "kiosk"  # type: ignore[index]
    assert replies[99]["result"]["role"] == "kiosk"  # type: ignore[index]
    with open_station.sync_client() as hal:  # the station's owner is admin: allowed
        assert hal.call("diag.usage")["by"] == "kind"
        assert hal.call("diag.info")["uid"] == os.getuid()


def test_log_ring_keeps_what_passed_the_rate_limit() -> None:
    ring = logs.LogRing(size=8)
    limit = logs.RateLimit(burst=3, window=3600)
    logger = logging.getLogger("halsvc.test.ring")
    logger.propagate = False
    handler = logging.StreamHandler(io.StringIO())
    handler.addFilter(limit)
    handler.addFilter(ring)
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        for _ in range(10):
            logger.warning("printer link lost", extra={"device": "printer0", "reason": "link_lost"})
        logger.error("scale says %s", "overload", extra={"device": "scale0"})
    finally:
        logger.removeHandler(handler)
    records = list(ring.records)
    assert [r["message"] for r in records] == ["printer link lost"] * 3 + ["scale says overload"]
    assert records[0]["priority"] == 4 and records[0]["device"] == "printer0"
    assert records[0]["reason"] == "link_lost" and records[-1]["priority"] == 3
    for _ in range(20):
        ring.filter(logging.LogRecord("x", logging.INFO, "", 0, "m", None, None))
    assert len(ring.records) == 8  # bounded


def test_config_secrets_are_redacted() -> None:
    from halsvc.diag import redact

    doc = {"daemon": {"state_dir": "/var/lib/halsvc"},
           "devices": {"payment0": {"driver": "payment", "host": "10.0.0.2", "api_key": "s3cr3t",
                                    "tls": {"client_cert": "/etc/halsvc/c.pem", "password": "hunter2"},
                                    "pins": ["1234"], "terminal_pin": "0000"}},
           "bridge": {"token_file": "/run/halsvc/kiosk.token", "origins": ["http://127.0.0.1:8765"]}}
    out = redact(doc)
    text = json.dumps(out)
    for secret in ("s3cr3t", "hunter2", "/etc/halsvc/c.pem", "0000", "kiosk.token"):
        assert secret not in text, secret
    assert out["devices"]["payment0"]["host"] == "10.0.0.2"
    assert out["bridge"]["origins"] == ["http://127.0.0.1:8765"] and out["daemon"] == doc["daemon"]
