"""The CCCD reader through the daemon: halctl idcard read/watch, and DESIGN §4 — none of the
citizen's fields, the CAN, the MRZ or the face reaches the daemon's log (at DEBUG), its state
directory, or another connection's events."""

from __future__ import annotations

import asyncio
import json
import os
import pathlib
import subprocess
import sys
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from conftest import run
from harness import ROOT, Station

from halsvc.client import RpcError
from simulators.cccd_card.document import DEFAULT_CITIZEN

CAN = DEFAULT_CITIZEN["id_number"][-6:]
HALCTL = [sys.executable, "-m", "halsvc.cli"]


def secrets() -> list[str]:
    """Every citizen value distinctive enough to search for, in plain and JSON-escaped forms."""
    values = [v for k, v in DEFAULT_CITIZEN.items() if isinstance(v, str) and len(v) >= 8
              and k not in ("nationality",)]
    values += [CAN, "930105", "330105", "203001234", "NGUYEN<<THI", "999999"]  # 999999: the wrong CAN
    out = []
    for v in values:
        out += [v, json.dumps(v)[1:-1]]
    return sorted(set(out))


def leaks(text: str, extra: list[str]) -> list[str]:
    return [s for s in [*secrets(), *extra] if s in text]


def state_files(root: pathlib.Path) -> Iterator[pathlib.Path]:
    for path in root.rglob("*"):
        if path.is_file():
            yield path


def test_reads_leave_no_citizen_data_in_logs_state_or_other_clients_events(
        station: Callable[..., Station], tmp_path: pathlib.Path) -> None:
    st = station(only={"cccd_card"}, config={"daemon": {"log_level": "debug"}})
    face_file = tmp_path / "face.jpg"
    spy_events: list[dict[str, Any]] = []
    face_b64: list[str] = []

    async def go() -> None:
        async with st.client() as spy, st.client() as kiosk:
            await st.until_online(kiosk, "idcard0", card_present=True)
            await spy.subscribe("*")
            await kiosk.subscribe("idcard.*")
            progress: list[dict[str, Any]] = []
            result = await kiosk.call("idcard.read", {"can": CAN}, on_progress=progress.append)
            assert result["full_name"] == DEFAULT_CITIZEN["full_name"]
            assert result["authenticity"]["status"] == "valid"
            face_b64.append(result["face"]["data"][:64])
            assert any(p["data"].get("datagroup") == "DG2" for p in progress)
            with pytest.raises(RpcError) as info:
                await kiosk.call("idcard.read", {"can": "999999"})
            assert info.value.reason == "wrong_access_key"
            out = await asyncio.to_thread(
                subprocess.run, [*HALCTL, "idcard", "read", "--can", CAN, "--face", str(face_file),
                                 "--socket", str(st.socket)],
                capture_output=True, text=True, timeout=120, cwd=ROOT, env={**os.environ})
            assert out.returncode == 0, out.stderr
            assert DEFAULT_CITIZEN["full_name"] in out.stdout and "authenticity valid" in out.stdout
            assert "DG2" in out.stderr  # progress
            await spy.call("hal.status")  # everything before this answer has reached the spy
            while not spy._events.empty():
                ev = spy._events.get_nowait()
                if ev is not None:
                    spy_events.append(ev)

    run(go())
    assert face_file.read_bytes()[:3] == b"\xff\xd8\xff"
    topics = {e["topic"] for e in spy_events}
    assert "idcard.status" in topics  # it saw the reads happen (busy/online) ...
    assert all("request_id" not in e for e in spy_events)  # ... but none of their progress
    assert leaks(json.dumps(spy_events, ensure_ascii=False), face_b64) == []
    assert "card read" in st.log()  # debug logging was on and the reads were logged
    assert leaks(st.log(), face_b64) == []
    for path in state_files(st.workdir / "state"):
        assert leaks(path.read_bytes().decode("utf-8", "replace"), face_b64) == [], path


def test_halctl_idcard_watch_shows_taps_and_removals(station: Callable[..., Station]) -> None:
    st = station(only={"cccd_card"})

    async def ready() -> None:
        async with st.client() as hal:
            await st.until_online(hal, "idcard0", card_present=True)

    run(ready())
    proc = subprocess.Popen([*HALCTL, "idcard", "watch", "--json", "--socket", str(st.socket)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    topics: list[str] = []
    try:
        assert proc.stderr is not None and proc.stdout is not None
        assert "watching idcard.*" in proc.stderr.readline()
        st.control("cccd_card", "remove")
        while "idcard.card_removed" not in topics:  # pcscd must see it go before it comes back
            topics.append(json.loads(proc.stdout.readline())["topic"])
        st.control("cccd_card", "insert")
        while "idcard.card_present" not in topics:
            topics.append(json.loads(proc.stdout.readline())["topic"])
    finally:
        proc.kill()
        proc.communicate()
    assert topics.index("idcard.card_removed") < topics.index("idcard.card_present"), topics
