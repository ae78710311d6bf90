"""The one convention every `bench/*.py` follows, so `make bench` can print a single table.

A bench prints whatever it likes for a human, then, as its LAST line of stdout:

    BENCH-JSON {"bench": "rpc", "figures": [{"name", "value", "unit", "target", "ok"}, ...]}

- `name`: what was measured, e.g. "p50 round trip, halsvc / echo (1 client)"
- `value`: a number (a ratio against a baseline measured in the same run, or an absolute figure)
- `unit`: "x" for a ratio, else "ms", "MiB", "%", "count"...
- `target`: the target as text ("<= 1.3", "< 150 ms") or null when the figure is for information
- `ok`: true/false against the target, null when there is none

`figure()` and `emit()` below build and print that line; `bench/run_all.py` collects them.
"""

from __future__ import annotations

import json
import math
import operator
import re
from collections.abc import Iterable
from typing import Any

PREFIX = "BENCH-JSON "
_OPS = {"<=": operator.le, "≤": operator.le, "<": operator.lt, ">=": operator.ge, "≥": operator.ge,
        ">": operator.gt, "==": operator.eq}


def meets(value: float, target: str | None) -> bool | None:
    """`target` like "≤ 1.3", ">= 2", "< 150 ms" -> whether `value` meets it (None: no target)."""
    if not target:
        return None
    m = re.match(r"\s*(<=|>=|≤|≥|<|>|==)\s*([-+0-9.eE]+)", target)
    if m is None or not math.isfinite(value):
        return None if m is None else False
    return bool(_OPS[m.group(1)](value, float(m.group(2))))


def figure(name: str, value: float, unit: str = "x", target: str | None = None,
           ok: bool | None = None) -> dict[str, Any]:
    """One figure; `ok` is worked out from `target` unless given."""
    return {"name": name, "value": float(value), "unit": unit, "target": target,
            "ok": meets(float(value), target) if ok is None else bool(ok)}


def emit(bench: str, figures: Iterable[dict[str, Any]]) -> None:
    """Print the final BENCH-JSON line (call it last)."""
    print(PREFIX + json.dumps({"bench": bench, "figures": list(figures)}, ensure_ascii=False), flush=True)


def parse(stdout: str) -> dict[str, Any] | None:
    """The last BENCH-JSON line of a bench's output, or None."""
    for line in reversed(stdout.splitlines()):
        if line.startswith(PREFIX):
            doc = json.loads(line[len(PREFIX):])
            return doc if isinstance(doc, dict) else None
    return None
