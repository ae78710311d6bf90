"""What the usage figures cost: a counted driver operation's round trip through the real daemon
with usage counting on vs off (two daemons, same run, same station), the in-process cost of one
`observe()` against a bare dict increment, and the state a busy year leaves (file size, save
time) — bounded by design.

    python bench/usage.py [--requests 3000]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import pathlib
import statistics
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent
for p in (ROOT, ROOT / "tests", ROOT / "bench"):
    sys.path.insert(0, str(p))

from benchjson import emit, figure  # noqa: E402
from harness import Station  # noqa: E402

from halsvc.usage import UsageStore  # noqa: E402


async def interleaved(on: Station, off: Station, n: int, batch: int = 50) -> tuple[list[float], list[float]]:
    """Round trips of indicator.set on both daemons in alternating batches, so machine load (two
    cores shared with others) falls on both alike."""
    params = {"name": "card", "pattern": "on"}
    async with on.client() as a, off.client() as b:
        await on.until_online(a, "panel0")
        await off.until_online(b, "panel0")
        times: dict[int, list[float]] = {0: [], 1: []}
        for _ in range(200):  # warm up
            await a.call("indicator.set", params)
            await b.call("indicator.set", params)
        for _ in range(n // batch):
            for i, hal in ((0, a), (1, b)):
                for _ in range(batch):
                    t0 = time.perf_counter()
                    await hal.call("indicator.set", params)
                    times[i].append(time.perf_counter() - t0)
        return times[0], times[1]


def daemon_p50s(n: int) -> tuple[float, float]:
    on = Station(only={"gpio_panel"}, config={"usage": {"enabled": True}})
    off = Station(only={"gpio_panel"}, config={"usage": {"enabled": False}})
    try:
        on.start()
        off.start()
        t_on, t_off = asyncio.run(interleaved(on, off, n))
        return statistics.median(t_on), statistics.median(t_off)
    finally:
        on.stop()
        off.stop()


def observe_cost(n: int = 200_000) -> tuple[float, float]:
    when = datetime.datetime(2026, 12, 4, 9, 0, tzinfo=datetime.timezone(datetime.timedelta(hours=7)))
    store = UsageStore(pathlib.Path(tempfile.mkdtemp()) / "usage.json", now=lambda: when,
                       kinds={"indicator.set": "gpio"})
    reply = {"jsonrpc": "2.0", "id": 1, "result": {"name": "card", "pattern": "on"}}
    t0 = time.perf_counter()
    for _ in range(n):
        store.observe("indicator.set", reply, 0.0004)
    observe = (time.perf_counter() - t0) / n
    counts: dict[tuple[str, str], int] = {}
    t0 = time.perf_counter()
    for _ in range(n):
        key = ("gpio", "indicator.set")
        counts[key] = counts.get(key, 0) + 1
    bare = (time.perf_counter() - t0) / n
    return observe, bare


def busy_year(tmp: pathlib.Path) -> tuple[int, float]:
    """12 operations, 14 opening hours a day, a year of days: every cell the store can hold."""
    t = datetime.datetime(2026, 1, 1, 7, 0, tzinfo=datetime.timezone(datetime.timedelta(hours=7)))
    store = UsageStore(tmp / "usage.json", now=lambda: t, beneficiaries=True,
                       kinds={f"op{i}.run": f"kind{i % 6}" for i in range(12)})
    for day in range(365):
        for hour in range(14):
            t = datetime.datetime(2026, 1, 1, 7 + hour, 0, tzinfo=t.tzinfo) + datetime.timedelta(days=day)
            for i in range(12):
                store.observe(f"op{i}.run", {"result": {}}, 0.5 + i)
                store.observe(f"op{i}.run", {"error": {"code": -32005, "data": {"reason": "no_card"}}}, 0.1)
    t0 = time.perf_counter()
    store.save()
    return (tmp / "usage.json").stat().st_size, time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=3000)
    args = ap.parse_args()
    on, base = daemon_p50s(args.requests)
    observe, bare = observe_cost()
    size, save_s = busy_year(pathlib.Path(tempfile.mkdtemp()))
    print(f"indicator.set p50: usage off {base * 1e6:.0f} µs, on {on * 1e6:.0f} µs -> {on / base:.3f}x")
    print(f"observe(): {observe * 1e6:.2f} µs per counted reply ({observe / bare:.1f}x a bare dict "
          "increment)")
    print(f"a busy year (12 operations, 14 h a day): usage.json {size / 1e6:.2f} MB, saved in "
          f"{save_s * 1e3:.0f} ms")
    emit("usage", [
        # Two daemons side by side differ by ~5% even with the same config (A/A, loaded 2-core
        # machine), so this ratio is for information; the share below is the cost itself.
        figure("p50 round trip of a counted operation, usage on / off", on / base, "x"),
        figure("observe() as a share of that round trip", observe / base * 100, "%", "< 5"),
        figure("observe() per counted reply", observe * 1e6, "µs", "< 50"),
        figure("observe() / bare dict increment", observe / bare, "x"),
        figure("usage.json after a busy year", size / 1e6, "MB", "< 8"),
        figure("save() of a busy year", save_s * 1e3, "ms", "< 1000"),
    ])


if __name__ == "__main__":
    main()
