"""The usage store on its own: bounded duration buckets and their quantiles, beneficiary groups
and small-cell suppression, atomic persistence and the OpenMetrics text (checked by
prometheus_client's strict OpenMetrics parser)."""

from __future__ import annotations

import datetime
import json
import pathlib

import pytest
from prometheus_client.openmetrics.parser import text_string_to_metric_families

from halsvc import usage
from halsvc.usage import BUCKETS_MS, Cell, UsageStore, age_band, quantile, sex_group, suppress

TZ = datetime.timezone(datetime.timedelta(hours=7))


class Clock:
    def __init__(self, when: str) -> None:
        self.t = datetime.datetime.fromisoformat(when)

    def __call__(self) -> datetime.datetime:
        return self.t

    def at(self, when: str) -> None:
        self.t = datetime.datetime.fromisoformat(when)


def store(tmp_path: pathlib.Path, clock: Clock, **kw: object) -> UsageStore:
    kinds = {"idcard.read": "idcard", "buzzer.beep": "gpio"}
    return UsageStore(tmp_path / "usage.json", now=clock, kinds=kinds, **kw)  # type: ignore[arg-type]


def ok(result: dict[str, object] | None = None) -> dict[str, object]:
    return {"jsonrpc": "2.0", "id": 1, "result": result or {}}


def err(reason: str) -> dict[str, object]:
    return {"jsonrpc": "2.0", "id": 1, "error": {"code": -32005, "message": "x", "data": {"reason": reason}}}


def test_quantiles_interpolate_within_buckets_and_state_stays_bounded() -> None:
    cell = Cell()
    for _ in range(10_000):
        cell.add(True, None, 700.0)  # 500 < 700 <= 1000
    assert len(cell.to_json()["h"]) == len(BUCKETS_MS) + 1
    assert 500 <= quantile(cell.hist, 0.5) <= 1000  # type: ignore[operator]
    assert quantile(Cell().hist, 0.5) is None
    slow = Cell()
    slow.add(True, None, 10_000_000)
    assert quantile(slow.hist, 0.9) == BUCKETS_MS[-1]
    many = Cell()
    for i in range(100):
        many.add(False, f"reason_{i}", 1)
    assert len(many.failures) == usage.MAX_REASONS + 1 and many.failures["other"] == 100 - usage.MAX_REASONS
    assert many.hist == [0] * len(many.hist)  # failures carry no duration


def test_groups_fold_sex_and_band_ages() -> None:
    today = datetime.date(2026, 12, 4)
    assert age_band("1993-01-05", today) == "30-39"
    assert age_band("1996-12-05", today) == "20-29"  # 29 until tomorrow
    assert age_band("1930-01-01", today) == "90+"
    assert age_band("garbage", today) == age_band(None, today) == "unknown"
    assert sex_group("Nữ") == sex_group("NỮ") == "female"
    assert sex_group("Nam") == "male" and sex_group("") == "unknown" and sex_group("X") == "other"


def test_small_cells_are_suppressed_and_a_lone_hidden_cell_gets_company() -> None:
    rows, hidden = suppress({("30-39", "female"): 7, ("20-29", "male"): 12, ("40-49", "male"): 2})
    # 2 is hidden; alone it could be had as total - shown, so the smallest shown (7) goes too
    assert rows == [{"age_band": "20-29", "sex": "male", "count": 12}] and hidden == 2
    rows, hidden = suppress({("30-39", "female"): 4, ("40-49", "male"): 3, ("20-29", "male"): 9})
    assert rows == [{"age_band": "20-29", "sex": "male", "count": 9}] and hidden == 2
    assert suppress({("a", "b"): 5}) == ([{"age_band": "a", "sex": "b", "count": 5}], 0)
    assert suppress({("a", "b"): 9}, min_cell=2)[0][0]["count"] == 9  # min_cell never below 5
    assert suppress({("a", "b"): 4}, min_cell=2) == ([], 1)


def test_beneficiaries_are_counted_only_when_enabled(tmp_path: pathlib.Path) -> None:
    clock = Clock("2026-12-04T09:30:00+07:00")
    off = store(tmp_path, clock)
    off.observe("idcard.read", ok({"birth_date": "1993-01-05", "sex": "Nữ"}), 1.0)
    assert off.groups == {} and off.report()["beneficiaries"] == {"enabled": False}
    on = store(tmp_path, clock, beneficiaries=True)
    for _ in range(4):
        on.observe("idcard.read", ok({"birth_date": "1993-01-05", "sex": "Nữ"}), 1.0)
    report = on.report()["beneficiaries"]
    assert report["cells"] == [] and report["suppressed_cells"] == 1
    assert "halsvc_beneficiary_reads{" not in usage.openmetrics(on)
    for _ in range(2):
        on.observe("idcard.read", ok({"birth_date": "1993-01-05", "sex": "Nữ"}), 1.0)
    for _ in range(5):
        on.observe("idcard.read", ok({"birth_date": "1980-06-01", "sex": "Nam"}), 1.0)
    report = on.report()["beneficiaries"]
    assert report["cells"] == [{"age_band": "30-39", "sex": "female", "count": 6},
                               {"age_band": "40-49", "sex": "male", "count": 5}]
    assert 'halsvc_beneficiary_reads{age_band="30-39",sex="female"} 6' in usage.openmetrics(on)
    on.save()
    text = (tmp_path / "usage.json").read_text()
    assert "1993" not in text and "Nữ" not in text and "1980" not in text


def test_scripted_counts_by_hour_day_kind_and_restart(tmp_path: pathlib.Path) -> None:
    clock = Clock("2026-12-03T08:10:00+07:00")
    s = store(tmp_path, clock)
    s.observe("buzzer.beep", ok(), 0.2)
    s.observe("hal.ping", ok(), 0.0)  # not a device operation
    clock.at("2026-12-03T14:50:00+07:00")
    s.observe("idcard.read", ok(), 2.0)
    s.observe("idcard.read", err("no_card"), 0.01)
    clock.at("2026-12-04T08:05:00+07:00")
    s.observe("idcard.read", ok(), 3.0)
    s.save()
    again = store(tmp_path, clock)
    again.load()
    by_hour = {(r["key"], r["method"]): r for r in again.report("hour")["rows"]}
    assert by_hour[("08", "buzzer.beep")]["uses"] == 1
    assert by_hour[("08", "idcard.read")]["ok"] == 1
    assert by_hour[("14", "idcard.read")]["failures"] == {"no_card": 1}
    by_day = {(r["key"], r["method"]): r["uses"] for r in again.report("day")["rows"]}
    assert by_day == {("2026-12-03", "buzzer.beep"): 1, ("2026-12-03", "idcard.read"): 2,
                      ("2026-12-04", "idcard.read"): 1}
    kinds = {r["kind"]: r for r in again.report("kind")["rows"]}
    assert kinds["idcard"]["uses"] == 3 and kinds["idcard"]["failed"] == 1
    assert 1000 <= kinds["idcard"]["median_ms"] <= 5000
    assert [r["uses"] for r in again.report("kind", since="2026-12-04")["rows"]] == [1]


def test_bad_file_is_set_aside_not_fatal(tmp_path: pathlib.Path) -> None:
    (tmp_path / "usage.json").write_text('{"version": 1, "totals": [[')
    s = store(tmp_path, Clock("2026-12-04T09:00:00+07:00"))
    s.load()
    assert s.totals == {} and (tmp_path / "usage.json.bad").exists()
    (tmp_path / "usage.json").write_text(json.dumps({"version": 99}))
    s.load()
    assert s.totals == {}


def test_old_cells_are_pruned_but_totals_stay(tmp_path: pathlib.Path) -> None:
    clock = Clock("2026-01-01T10:00:00+07:00")
    s = store(tmp_path, clock, hourly_days=2, daily_days=5)
    s.observe("buzzer.beep", ok(), 0.1)
    clock.at("2026-01-04T10:00:00+07:00")
    s.save()
    assert s.hours == {} and len(s.days) == 1
    clock.at("2026-02-01T10:00:00+07:00")
    s.save()
    assert s.days == {} and s.totals[("gpio", "buzzer.beep")].uses == 1


def test_openmetrics_text_is_valid(tmp_path: pathlib.Path) -> None:
    s = store(tmp_path, Clock("2026-12-04T09:00:00+07:00"), beneficiaries=True)
    s.observe("idcard.read", ok(), 1.5)
    s.observe("idcard.read", err('odd"reason\\'), 0.1)
    s.observe("buzzer.beep", ok(), 0.3)
    text = usage.openmetrics(s)
    assert text.endswith("# EOF\n")
    families = {f.name: f for f in text_string_to_metric_families(text)}
    assert families["halsvc_operations"].type == "counter"
    samples = {(x.name, tuple(sorted(x.labels.items()))): x.value
               for x in families["halsvc_operations"].samples}
    assert samples[("halsvc_operations_total", (("kind", "idcard"), ("method", "idcard.read"),
                                                ("result", "error")))] == 1
    hist = families["halsvc_operation_duration_seconds"]
    assert hist.type == "histogram" and hist.unit == "seconds"
    counts = [x.value for x in hist.samples if x.name.endswith("_count")]
    assert sorted(counts) == [1, 1]
    failures = families["halsvc_operation_failures"].samples
    assert failures[0].labels["reason"] == 'odd"reason\\'


def test_empty_store_still_writes_valid_metrics(tmp_path: pathlib.Path) -> None:
    s = store(tmp_path, Clock("2026-12-04T09:00:00+07:00"), metrics_file=str(tmp_path / "m" / "halsvc.prom"))
    s.save()
    text = (tmp_path / "m" / "halsvc.prom").read_text()
    assert list(text_string_to_metric_families(text)) is not None and text.endswith("# EOF\n")
    assert not list(tmp_path.glob("m/.halsvc.prom.*"))  # no temporary file left behind


@pytest.mark.parametrize("value", [{"timezone": "Mars/Olympus"}, {"min_cell": 2}, {"beneficiaries": "yes"},
                                   {"nonsense": 1}])
def test_bad_usage_config_names_the_key(value: dict[str, object]) -> None:
    from halsvc.config import ConfigError, parse

    lines = "\n".join(f"{k} = {json.dumps(v)}" for k, v in value.items())
    with pytest.raises(ConfigError, match="usage"):
        parse(f"[usage]\n{lines}\n", "t.toml")


def test_saved_periodically_only_when_something_changed(tmp_path: pathlib.Path) -> None:
    """run()'s ticks driven by the test (an injected sleep), so each save is seen as it happens."""
    import asyncio

    s = store(tmp_path, Clock("2026-12-04T09:00:00+07:00"), metrics_file=str(tmp_path / "m.prom"))
    path = tmp_path / "usage.json"

    async def go() -> None:
        tick: asyncio.Queue[asyncio.Future[None]] = asyncio.Queue()

        async def sleep(_s: float) -> None:
            done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            await tick.put(done)
            await done

        task = asyncio.create_task(s.run(60, sleep))
        (await tick.get()).set_result(None)  # saved once at start, now asleep: wake it
        assert path.exists() and (tmp_path / "m.prom").exists()
        first = path.stat().st_mtime_ns
        path.unlink()
        (await tick.get()).set_result(None)  # nothing changed: no write
        assert not path.exists()
        s.observe("buzzer.beep", ok(), 0.2)
        (await tick.get()).set_result(None)
        await tick.get()  # asleep again, after the save
        assert json.loads(path.read_text())["totals"][0][:2] == ["gpio", "buzzer.beep"]
        assert path.stat().st_mtime_ns >= first and not s.dirty
        task.cancel()

    asyncio.run(go())


def test_classic_text_format_keeps_counters_typed_for_node_exporter(tmp_path: pathlib.Path) -> None:
    from prometheus_client.parser import text_string_to_metric_families as classic_families

    s = store(tmp_path, Clock("2026-12-04T09:00:00+07:00"))
    s.observe("idcard.read", ok(), 1.5)
    s.observe("idcard.read", err("no_card"), 0.1)
    text = usage.openmetrics(s, classic=True)
    assert "# EOF" not in text and "# UNIT" not in text
    families = {f.name: f for f in classic_families(text)}
    assert families["halsvc_operations"].type == "counter"  # the parser names counters without _total
    assert families["halsvc_operation_failures"].type == "counter"
    assert families["halsvc_operation_duration_seconds"].type == "histogram"
    results = {x.labels["result"]: x.value for x in families["halsvc_operations"].samples}
    assert results == {"ok": 1, "error": 1}
