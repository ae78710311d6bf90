"""docs/api.md is generated from rpc.discover and must be current; its examples must match the
methods' own schemas, and the generator's document must be what a live daemon answers."""

from __future__ import annotations

import pathlib
import re
import sys
from typing import Any

import pytest
from conftest import ROOT, run
from harness import Station

from halsvc import apidoc, builtins
from halsvc.schema import SchemaError, validate

REGENERATE = "regenerate it: .venv/bin/python -m halsvc.apidoc > docs/api.md"


def test_docs_api_md_is_current() -> None:
    current = (ROOT / "docs" / "api.md").read_text(encoding="utf-8")
    assert current == apidoc.render(apidoc.discover_document()), f"docs/api.md is stale; {REGENERATE}"


def test_every_method_and_topic_is_documented() -> None:
    doc = apidoc.discover_document()
    text = apidoc.render(doc)
    for m in doc["methods"]:
        assert f"### {m['name']}\n" in text
    for topic in doc["components"]["x-topics"]:
        assert f"| `{topic}` |" in text
    for reason in doc["components"]["x-reasons"]:
        assert f"| `{reason}` |" in text


def test_every_progress_topic_a_driver_sends_is_declared() -> None:
    """A `ctx.progress("topic", ...)` in a driver's code must be in its methods' `events=`, or
    rpc.discover and docs/api.md would not tell integrators about it."""
    for cls in apidoc.every_driver():
        module = pathlib.Path(sys.modules[cls.__module__].__file__ or "")
        # drivers/<name>.py alone, or every module of the drivers/<name>/ package
        files = [module] if module.parent.name == "drivers" else sorted(module.parent.glob("*.py"))
        sent = {t for f in files for t in re.findall(r'progress\(\s*"([a-z_.]+)"', f.read_text())}
        declared = {t for spec in cls.rpc_methods() for t in spec.events}
        assert sent <= declared, f"{cls.__name__}: progress topics not in any events=: {sent - declared}"
    for spec, _ in builtins.BUILTINS:
        assert spec.events or not spec.long, spec.name


def _method(doc: dict[str, Any], name: str) -> dict[str, Any]:
    return next(m for m in doc["methods"] if m["name"] == name)


@pytest.mark.parametrize("flow", [f[0] for f in apidoc.FLOWS])
def test_each_example_exchange_matches_the_schemas(flow: str) -> None:
    doc = apidoc.discover_document()
    present = {f[0] for f in apidoc.flows(doc)}
    if flow not in present:
        pytest.skip(f"{flow}: its methods are not in this build")
    exchange = next(f[2] for f in apidoc.FLOWS if f[0] == flow)
    pending: dict[Any, dict[str, Any]] = {}
    for direction, msg in exchange:
        if direction == "->":
            m = _method(doc, msg["method"])
            validate(m["x-params-schema"], msg["params"])
            pending[msg["id"]] = m
        elif msg.get("method") == "event":
            params = msg["params"]
            validate(doc["components"]["schemas"]["Event"], params, "event")
            if "request_id" in params:
                assert params["topic"] in pending[params["request_id"]]["x-events"], params["topic"]
            else:
                assert params["topic"] in doc["components"]["x-topics"], params["topic"]
        else:
            m = pending.pop(msg["id"])
            if "error" in msg:
                reasons = {e["data"]["reason"] for e in m["errors"]}
                assert msg["error"]["data"]["reason"] in reasons
                assert msg["error"]["code"] == doc["components"]["x-reasons"][msg["error"]["data"]["reason"]]
            else:
                try:
                    validate(m["result"]["schema"], msg["result"], "result")
                except SchemaError as exc:
                    pytest.fail(f"{flow}: {m['name']} example result: {exc}")
    assert not pending, f"{flow}: requests without an answer: {sorted(pending)}"


def test_generated_document_is_what_a_live_daemon_discovers(panel_station: Station) -> None:
    async def live() -> dict[str, Any]:
        async with panel_station.client() as hal:
            return await hal.call("rpc.discover")
    got = run(live())
    generated = apidoc.discover_document()
    by_name = {m["name"]: m for m in generated["methods"]}
    for m in got["methods"]:
        assert m == by_name[m["name"]], m["name"]
    for topic, entry in got["components"]["x-topics"].items():
        assert generated["components"]["x-topics"][topic]["delivery"] == entry["delivery"]
    assert got["components"]["x-reasons"] == generated["components"]["x-reasons"]
