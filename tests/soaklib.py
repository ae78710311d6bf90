"""The whole simulated station under load, faults and bad input (issue 10), as a library used by
`bench/soak.py` (`make soak`, minutes) and `tests/test_soak.py` (a short seeded run).

    result = asyncio.run(Soak(SoakConfig(seed=1, duration_s=60)).run())
    print(result.table()); assert result.ok

What runs: every station part and the daemon as real processes (tests/harness.py). `clients`
residents at kiosks do realistic visits with think times — read a card, weigh, measure (when
`health.measure` exists), pay (when `payment.pay` exists), print a receipt — and now and then a
bad request: garbage bytes, an oversized line, wrong params, an unknown method, a request and an
abrupt disconnect. Meanwhile the simulators inject random faults (card pulled, printer paper out /
cover / offline / link drop, scale unplugged / silent / noisy, panel unplugged, terminal crash /
link drop / busy) and the daemon is SIGKILLed and restarted a few times.

At the end (after every fault is repaired and the devices are back online):
- every request was answered, or its connection closed for a stated reason (`message_too_large`,
  `overloaded`, or the daemon killed by the soak); an `internal_error` or a reason outside
  DESIGN §2 counts as a failure too;
- no receipt printed twice (each receipt carries its job id in a QR; the printer simulator's job
  record is the paper), and none answered `printed` without paper;
- payments (when they exist): each idempotency key charged at most once on the terminal's ledger,
  the journal agreeing with the ledger, and every key the client saw approved charged exactly once;
- the daemon's RSS flat after warm-up (least-squares slope over the second half of the last
  daemon's life), its file descriptors back to the count after the first warm-up visit (BLE links it keeps
  connected counted apart).

Everything random comes from `seed` (per client, per fault injector), so a run is reproducible
in what it does; timing on a shared machine decides the interleaving.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import math
import os
import pathlib
import random
import re
import signal
import subprocess
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from harness import Station

from drivers.base import REASON_CODES
from halsvc.client import AsyncClient, DaemonUnreachable, RpcError
from simulators.control import acontrol, control

T = TypeVar("T")

# JSON-RPC's own reasons (halsvc/rpc.py) next to the application's (drivers/base.py).
RPC_REASONS = {"parse_error", "invalid_request", "method_not_found", "invalid_params", "message_too_large"}
CLOSE_REASONS = {"message_too_large", "overloaded", "events_overflow", "daemon_killed"}
FAILURE_REASONS = {"internal_error"}
MIN_RSS_SPAN_S = 300.0  # the RSS slope is judged over at least this much of the last daemon's life
ANSWER_CEILING_S = 240.0  # a request with no answer after this long is a failure, not a wait
FINAL_PAYMENT = {"approved", "declined", "aborted", "not_charged", "reversed"}

# Several residents for one simulated day (the card simulator's `set_citizen`). The audit test
# searches everything the daemon wrote for any of these fields.
CITIZENS: list[dict[str, str]] = [
    {"id_number": "079203001234", "full_name": "Nguyễn Thị Thu Hà", "birth_date": "1993-01-05",
     "sex": "Nữ", "place_of_origin": "Phường Bến Nghé, Quận 1, Thành phố Hồ Chí Minh",
     "place_of_residence": "123 Đường Lê Lợi, Phường Bến Thành, Quận 1, Thành phố Hồ Chí Minh",
     "issue_date": "2021-04-10", "expiry_date": "2033-01-05", "father_name": "Nguyễn Văn Hùng",
     "mother_name": "Trần Thị Lan", "spouse_name": "Lê Minh Tuấn",
     "identifying_marks": "Nốt ruồi cách 2cm trên đuôi mắt phải"},
    {"id_number": "001085012345", "full_name": "Trần Đức Mạnh", "birth_date": "1985-11-23",
     "sex": "Nam", "place_of_origin": "Xã Đông Hưng, Huyện Tiên Lãng, Thành phố Hải Phòng",
     "place_of_residence": "45 Phố Hàng Bạc, Phường Hàng Đào, Quận Hoàn Kiếm, Hà Nội",
     "issue_date": "2022-07-19", "expiry_date": "2045-11-23", "father_name": "Trần Văn Quý",
     "mother_name": "Đỗ Thị Hoà", "spouse_name": "Phạm Thu Trang",
     "identifying_marks": "Sẹo chấm cách 3cm dưới cằm"},
    {"id_number": "052301009876", "full_name": "Lê Hoàng Yến Nhi", "birth_date": "2001-02-14",
     "sex": "Nữ", "place_of_origin": "Phường Quang Trung, Thành phố Quy Nhơn, Bình Định",
     "place_of_residence": "78/12 Đường Nguyễn Trãi, Phường 3, Quận 5, Thành phố Hồ Chí Minh",
     "issue_date": "2021-09-30", "expiry_date": "2026-02-14", "father_name": "Lê Văn Thịnh",
     "mother_name": "Huỳnh Thị Ngọc Ánh", "spouse_name": "",
     "identifying_marks": "Nốt ruồi cách 1cm trên mép trái"},
    {"id_number": "038194004567", "full_name": "Phạm Quốc Đạt", "birth_date": "1994-08-30",
     "sex": "Nam", "place_of_origin": "Xã Quảng Xương, Huyện Quảng Xương, Thanh Hoá",
     "place_of_residence": "9 Hẻm 102 Đường Cách Mạng Tháng Tám, Phường 10, Quận 3, TP Hồ Chí Minh",
     "issue_date": "2023-01-03", "expiry_date": "2034-08-30", "father_name": "Phạm Văn Lực",
     "mother_name": "Vũ Thị Duyên", "spouse_name": "Ngô Bảo Châu",
     "identifying_marks": "Sẹo dài 2cm ở cổ tay phải"},
]


def can_of(citizen: dict[str, str]) -> str:
    return citizen["id_number"][-6:]


# --- figures ----------------------------------------------------------------------------------
@dataclass
class SoakConfig:
    seed: int = 1
    duration_s: float = 60.0
    clients: int = 32
    kills: int = 2                      # daemon SIGKILL + restart, spread over the first 60 %
    fault_mean_s: float = 6.0           # mean time between injected faults
    think_s: tuple[float, float] = (1.0, 6.0)
    bad_share: float = 0.2              # share of a client's actions that are bad requests
    citizen_every_s: float = 20.0       # a new resident's card on the reader
    sample_s: float = 1.0               # RSS / fd sampling period
    workdir: pathlib.Path | None = None
    part_options: dict[str, dict[str, Any]] | None = None  # Station(options=), e.g. a vpcd slot
    daemon_config: dict[str, Any] | None = None  # merged into the daemon's config
    log: Callable[[str], None] = print


@dataclass
class Fault:
    label: str
    part: str
    action: str
    args: dict[str, Any]
    repair: str | None              # the action that undoes it (None: a one-shot)
    repair_args: dict[str, Any]


@dataclass
class Sample:
    t: float
    pid: int
    rss_kib: int
    fds: int


@dataclass
class Result:
    config: SoakConfig
    methods: list[str]
    skipped: list[str]
    outcomes: collections.Counter[tuple[str, str]]
    failures: list[str]
    faults: collections.Counter[str]
    kills: int
    prints: dict[str, Any]
    payments: dict[str, Any]
    memory: dict[str, Any]
    fds: dict[str, Any]
    wall_s: float
    messages: dict[tuple[str, str], str] = field(default_factory=dict)
    daemon_log: dict[str, Any] = field(default_factory=dict)

    @property
    def requests(self) -> int:
        return sum(self.outcomes.values())

    @property
    def checks(self) -> list[tuple[str, str, str, bool | None]]:
        """(check, value, target, ok) rows; ok None = not applicable in this run."""
        rows: list[tuple[str, str, str, bool | None]] = []
        unexplained = len(self.failures)
        rows.append(("requests unanswered / closed without reason / internal", str(unexplained), "0",
                     unexplained == 0))
        p = self.prints
        rows.append(("receipts printed twice", str(p.get("twice", 0)), "0", p.get("twice", 0) == 0))
        rows.append(("receipts answered printed, not on paper", str(p.get("lost", 0)), "0",
                     p.get("lost", 0) == 0))
        pay = self.payments
        if pay.get("available"):
            rows.append(("payments charged twice (ledger)", str(pay["doubled"]), "0", pay["doubled"] == 0))
            rows.append(("payments approved to client, not on ledger", str(pay["lost"]), "0",
                         pay["lost"] == 0))
            rows.append(("journal vs terminal ledger mismatches", str(pay["mismatched"]), "0",
                         pay["mismatched"] == 0))
        else:
            rows.append(("payments (payment.pay not in rpc.discover)", "skipped", "", None))
        m = self.memory
        if m.get("slope_kib_per_h") is not None:
            rows.append(("daemon RSS slope, 2nd half of last daemon life",
                         f"{m['slope_kib_per_h'] / 1024:+.2f} MiB/h", f"≤ {m['target_mib_per_h']:g} MiB/h",
                         m.get("flat")))
        else:
            rows.append(("daemon RSS slope", "too few samples", "", None))
        if m.get("slope_kib_per_h") is not None and m.get("flat") is None:
            rows[-1] = (rows[-1][0] + f" (judged over ≥ {MIN_RSS_SPAN_S / 60:.0f} min)", *rows[-1][1:])
        f = self.fds
        what = "daemon fds at end vs after warm-up"
        if f.get("end") != f.get("start") and f.get("end_warm_up_lacked"):
            # the same visit did not get as far at the end: what it opens is not open (say so)
            what += f" (end visit failed at {', '.join(f['end_warm_up_lacked'])})"
        rows.append((what, f"{f.get('end')} vs {f.get('start')}", "equal", f.get("end") == f.get("start")))
        return rows

    @property
    def ok(self) -> bool:
        return all(ok is not False for *_, ok in self.checks)

    def table(self) -> str:
        c = self.config
        out = [f"soak: seed {c.seed}, {self.wall_s / 60:.1f} min, {c.clients} clients, "
               f"{self.kills} daemon SIGKILLs, {sum(self.faults.values())} faults, {self.requests} requests"]
        if self.skipped:
            out.append("flows skipped (method not in rpc.discover): " + ", ".join(self.skipped))
        by_method: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
        for (method, outcome), n in self.outcomes.items():
            by_method[method][outcome] += n
        out.append("")
        out.append(f"{'request':24} {'count':>6}  outcomes")
        for method in sorted(by_method):
            cnt = by_method[method]
            detail = ", ".join(f"{k} {v}" for k, v in cnt.most_common())
            out.append(f"{method:24} {sum(cnt.values()):6d}  {detail}")
        out.append("")
        out.append("faults injected: " + ", ".join(f"{k} {v}" for k, v in sorted(self.faults.items())))
        p, m = self.prints, self.memory
        out.append(f"receipts: {p.get('jobs_on_paper', 0)} jobs on paper, {p.get('printed', 0)} answered "
                   f"printed, {p.get('failed', 0)} failed, {p.get('repeated', 0)} repeats answered from "
                   "the job store")
        if self.payments.get("available"):
            pay = self.payments
            out.append(f"payments: {pay['keys']} keys, {pay['approved']} approved, ledger "
                       f"{pay['ledger_charges']} charges, journal {pay['journal_rows']} rows")
        if m.get("lives"):
            out.append("daemon fds per life (first / max / last sample under load): "
                       + "; ".join(f"{a}/{b}/{c}" for a, b, c in m["lives"]))
        if m.get("samples"):
            out.append(f"daemon RSS: start {m['first_kib'] / 1024:.1f} MiB, last life "
                       f"{m['life_s'] / 60:.1f} min from {m['half_kib'] / 1024:.1f} to "
                       f"{m['end_kib'] / 1024:.1f} MiB "
                       f"(peak {m['peak_kib'] / 1024:.1f}), {m['samples']} samples")
        out.append("")
        width = max(len(r[0]) for r in self.checks)
        out.append(f"{'check':{width}}  {'value':>22}  {'target':14}  verdict")
        for what, value, target, ok in self.checks:
            verdict = "ok" if ok else "FAIL" if ok is False else "n/a"
            out.append(f"{what:{width}}  {value:>22}  {target:14}  {verdict}")
        if self.fds.get("diff"):
            diff = ", ".join(f"{k} {v:+d}" for k, v in self.fds["diff"].items())
            out.append(f"fds, end minus start by kind: {diff}")
        if self.messages:
            out.append("")
            out.append("an error message per (request, reason), as the clients got it:")
            out += [f"  {m} {r}: {text[:90]}" for (m, r), text in sorted(self.messages.items())]
        if self.daemon_log.get("levels"):
            out.append("")
            lv = ", ".join(f"{k} {v}" for k, v in sorted(self.daemon_log["levels"].items()))
            out.append(f"daemon log: {lv} lines, {self.daemon_log['kinds']} kinds; e.g.")
            out += [f"  {e}" for e in self.daemon_log["examples"]]
        if self.failures:
            out.append("")
            out.append(f"first failures ({len(self.failures)}):")
            out += [f"  {f}" for f in self.failures[:20]]
        return "\n".join(out)

    def figures(self) -> list[dict[str, Any]]:
        """BENCH-JSON figures (bench/benchjson.py)."""
        figs: list[dict[str, Any]] = []
        for what, value, target, ok in self.checks:
            num = re.match(r"[-+]?[0-9.]+", value)
            figs.append({"name": what, "value": float(num.group(0)) if num else None,
                         "unit": "MiB/h" if "MiB/h" in value else "count", "target": target or None,
                         "ok": ok})
        figs.append({"name": "requests in the soak", "value": float(self.requests), "unit": "count",
                     "target": None, "ok": None})
        return figs


# --- the soak ---------------------------------------------------------------------------------
class Soak:
    def __init__(self, config: SoakConfig) -> None:
        self.cfg = config
        self.st = Station(workdir=config.workdir,
                          config={"daemon": {"log_level": "info"}, **(config.daemon_config or {})},
                          options=config.part_options)
        self.outcomes: collections.Counter[tuple[str, str]] = collections.Counter()
        self.failures: list[str] = []
        self.faults: collections.Counter[str] = collections.Counter()
        self.samples: list[Sample] = []
        self.epoch = 0             # daemon incarnation; a connection from an older one was killed
        self.daemon_up = asyncio.Event()
        self.kills = 0
        self.methods: set[str] = set()
        self.parts: dict[str, list[str]] = {}
        self.citizen = CITIZENS[0]
        self.print_results: dict[str, list[str]] = collections.defaultdict(list)
        self.pay_results: dict[str, list[str]] = collections.defaultdict(list)
        self.stop_at = 0.0
        self.repairs: dict[str, tuple[str, str, dict[str, Any]]] = {}  # what is broken -> its repair
        self.card_lock = asyncio.Lock()
        self.devices: dict[str, str] = {}
        self.warm_ups = 0
        self.warming = False
        self.fd_kinds: list[collections.Counter[str]] = []
        self.messages: dict[tuple[str, str], str] = {}  # the first message per (method, reason)
        self._background: set[asyncio.Task[None]] = set()

    # --- bookkeeping ----------------------------------------------------------------------
    def note(self, method: str, outcome: str) -> None:
        self.outcomes[(method, outcome)] += 1

    def fail(self, method: str, what: str) -> None:
        self.note(method, "FAILED")
        self.failures.append(f"{method}: {what}")

    async def call(self, hal: AsyncClient, epoch: int, method: str, params: dict[str, Any],
                   status_key: str | None = None, **kw: Any) -> dict[str, Any] | None:
        """One request, classified; the result, or None when it did not succeed."""
        t0 = time.monotonic()
        try:
            result = await asyncio.wait_for(hal.call(method, params, **kw), ANSWER_CEILING_S)
        except RpcError as exc:
            known = exc.reason in REASON_CODES or exc.reason in RPC_REASONS
            if exc.reason in FAILURE_REASONS or not known:
                self.fail(method, f"error {exc.code} {exc.reason}: {exc.message}")
            else:
                self.note(method, exc.reason)
            self.messages.setdefault((method, exc.reason), exc.message)
            if self.warming:
                self.cfg.log(f"soak: warm-up {method} {exc.reason} ({exc.message}) "
                             f"in {time.monotonic() - t0:.1f} s")
            raise
        except TimeoutError:
            self.fail(method, f"no answer within {ANSWER_CEILING_S:.0f} s")
            raise
        except ConnectionError:
            self.note_closed(method, hal, epoch)
            raise
        label = "ok"
        if status_key and isinstance(result, dict) and status_key in result:
            label = f"ok:{'repeated ' if result.get('repeated') else ''}{result[status_key]}"
            if result.get("reason"):
                label += f" ({result['reason']})"
        self.note(method, label)
        if self.warming:
            self.cfg.log(f"soak: warm-up {method} {label} in {time.monotonic() - t0:.1f} s")
        return result

    def note_closed(self, method: str, hal: AsyncClient, epoch: int) -> None:
        if epoch != self.epoch or not self.daemon_up.is_set():
            self.note(method, "closed:daemon_killed")
        elif hal.closed_reason in CLOSE_REASONS:
            self.note(method, f"closed:{hal.closed_reason}")
        else:
            # the kill may be under way: the daemon is gone but we have not flagged it yet
            if self.st.daemon is None or self.st.daemon.poll() is not None:
                self.note(method, "closed:daemon_killed")
            else:
                self.fail(method, f"connection closed without a reason ({hal.closed_reason})")

    async def connect(self) -> tuple[AsyncClient, int]:
        """A client connection, waiting through a daemon restart."""
        while True:
            await self.daemon_up.wait()
            epoch = self.epoch
            hal = AsyncClient(self.st.socket)
            try:
                await hal.connect()
                return hal, epoch
            except (DaemonUnreachable, ConnectionError, FileNotFoundError):
                self.note("connect", "refused:daemon_restarting")
                await asyncio.sleep(0.2)  # the socket is back at READY=1, which we wait on above

    async def control(self, part: str, action: str, **args: Any) -> dict[str, Any]:
        sock = self.st.simdir / "control.sock"
        if action in ("jobs", "ledger"):  # replies of megabytes: past asyncio's 64 KiB line limit
            reply = dict(await asyncio.to_thread(control, sock, part, action, **args))
        else:
            reply = dict(await acontrol(sock, part, action, **args))
        if not reply.get("ok"):
            raise RuntimeError(f"control {part} {action}: {reply}")
        return reply

    # --- the run --------------------------------------------------------------------------
    async def run(self) -> Result:
        t0 = time.monotonic()
        await asyncio.to_thread(self.st.start)
        try:
            self.daemon_up.set()
            await self.discover()
            await self.until_devices_online()
            warm = await self.warm_up()
            fd_start = await self.quiet_fds()
            self.stop_at = time.monotonic() + self.cfg.duration_s
            sampler = asyncio.create_task(self.sampler())
            tasks = [asyncio.create_task(self.resident(i)) for i in range(self.cfg.clients)]
            tasks += [asyncio.create_task(self.fault_injector()), asyncio.create_task(self.killer()),
                      asyncio.create_task(self.day()), asyncio.create_task(self.spy())]
            await asyncio.gather(*tasks)
            self.cfg.log(f"soak: residents done {time.monotonic() - self.stop_at:.1f} s after the load ended")
            sampler.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sampler
            # From here on a check that cannot run is a failure in the table, not a lost run.
            phase = time.monotonic()
            await self.guarded("repair", self.repair_all(), None)
            await self.guarded("devices back online", self.until_devices_online(), None)
            self.cfg.log(f"soak: faults repaired, devices online after {time.monotonic() - phase:.1f} s")
            await self.guarded("settle payments", self.settle_payments(), None)
            warm_end = await self.guarded("end warm-up", self.warm_up(), {})
            fd_end = await self.guarded("fd count", self.quiet_fds(), -1)
            self.cfg.log(f"soak: payments settled, warm-up visit, fds counted after "
                         f"{time.monotonic() - phase:.1f} s")
            prints = await self.guarded("receipts", self.check_prints(), {})
            payments = await self.guarded("payments", self.check_payments(), {"available": False})
            memory = self.memory()
            return Result(self.cfg, sorted(self.methods), self.skipped(), self.outcomes, self.failures,
                          self.faults, self.kills, prints, payments, memory,
                          {"start": fd_start, "end": fd_end, "diff": self.fd_diff(),
                           "end_warm_up_lacked": sorted(set(warm) - set(warm_end))},
                          time.monotonic() - t0, dict(self.messages), self.log_summary())
        finally:
            await asyncio.to_thread(self.st.stop)

    async def guarded(self, name: str, coro: Awaitable[T], default: T) -> T:
        try:
            return await coro
        except Exception as exc:
            self.failures.append(f"check '{name}' could not run: {type(exc).__name__}: {exc}")
            self.cfg.log(f"soak: {self.failures[-1]}")
            return default

    async def discover(self) -> None:
        hal, _ = await self.connect()
        async with contextlib.AsyncExitStack() as stack:
            stack.push_async_callback(hal.close)
            doc = await hal.call("rpc.discover", {})
            self.methods = {m["name"] for m in doc["methods"]}
            self.devices = {d["device"]: d["kind"] for d in (await hal.call("hal.status", {}))["devices"]}
        for part in ("gpio_panel", "cccd_card", "escpos_printer", "serial_scale", "payment_terminal",
                     "ble_station"):
            reply = dict(await acontrol(self.st.simdir / "control.sock", part, "__actions__"))
            m = re.search(r"actions: \[(.*)\]", str(reply.get("error", "")))
            if m:
                self.parts[part] = re.findall(r"'([^']+)'", m.group(1))
        self.cfg.log(f"soak: methods {len(self.methods)}, devices {self.devices}, parts {sorted(self.parts)}")

    def skipped(self) -> list[str]:
        return [m for m in ("idcard.read", "scale.read", "health.measure", "payment.pay", "printer.print")
                if m not in self.methods]

    async def until_devices_online(self) -> None:
        hal, _ = await self.connect()
        try:
            await asyncio.wait_for(self.st.until_online(hal, *self.devices), 120)
        except TimeoutError:
            status = await hal.call("hal.status", {})
            raise RuntimeError(f"devices not back online: {status['devices']}") from None
        finally:
            await hal.close()

    async def warm_up(self) -> dict[str, str]:
        """One visit of every step with nothing broken, so what opens lazily (job store, journal,
        the BLE link) is open before an fd count; the same visit again before the last count."""
        if "scale_station" in self.parts or "serial_scale" in self.parts:
            await self.control("serial_scale", "step_on", kg=62.5, settle_s=0.3)
        self.warm_ups += 1
        hal, epoch = await self.connect()
        seen: dict[str, str] = {}
        self.warming = True
        try:
            await self.visit(hal, epoch, None, f"warm{self.warm_ups}", seen)
        finally:
            self.warming = False
            await hal.close()
        return seen

    async def quiet_fds(self) -> int:
        """The daemon's fd count once only our probe is connected (polled: the count of open
        connections is what we wait for, with a ceiling)."""
        hal, _ = await self.connect()
        try:
            deadline = time.monotonic() + 60
            # Polled: the daemon has no event for "a connection was forgotten".
            while (await hal.call("hal.status", {}))["connections"] > 1:
                if time.monotonic() > deadline:
                    break
                await asyncio.sleep(0.2)
            pid = self.st.daemon.pid if self.st.daemon else 0
            kinds = await asyncio.to_thread(fd_kinds, pid)
            # Each BLE device the daemon keeps connected for the next resident has a bus
            # connection of its own (bleak's, by design): counted apart, so the check sees leaked
            # connections, not which devices this life happened to measure.
            links = 0
            if "health.devices" in self.methods:
                with contextlib.suppress(RpcError):
                    links = sum(bool(d.get("connected")) for d in
                                (await hal.call("health.devices", {}))["devices"])
            for key in [k for k in kinds if k.endswith("/ble/system_bus_socket")][:1]:
                kinds[key] -= links
            self.fd_kinds.append(kinds)
            return sum(kinds.values()) - 1  # minus our probe's connection
        finally:
            await hal.close()

    # --- residents ------------------------------------------------------------------------
    async def resident(self, i: int) -> None:
        rng = random.Random(f"{self.cfg.seed}:client:{i}")
        n = 0
        await asyncio.sleep(rng.uniform(0, self.cfg.think_s[1]))  # arrivals spread out
        while time.monotonic() < self.stop_at:
            n += 1
            if rng.random() < self.cfg.bad_share:
                await self.bad_request(rng, f"{i}-{n}")
            else:
                hal, epoch = await self.connect()
                try:
                    await self.visit(hal, epoch, rng, f"{self.cfg.seed}-{i}-{n}", {})
                finally:
                    await hal.close()
            await asyncio.sleep(rng.uniform(*self.cfg.think_s))

    async def think(self, rng: random.Random) -> None:
        if time.monotonic() < self.stop_at:  # no thinking in the warm-ups
            await asyncio.sleep(rng.uniform(*self.cfg.think_s) / 2)

    async def visit(self, hal: AsyncClient, epoch: int, rng: random.Random | None, tag: str,
                    seen: dict[str, str]) -> None:
        """A resident's visit: card, weight, health, payment, receipt — each step may fail for a
        stated reason (that is what faults do); a closed connection ends the visit. Without `rng`
        (the warm-up) every step, the same each time."""
        fixed = rng is None
        rng = rng or random.Random(0)

        def over() -> bool:  # a resident mid-visit when the load ends goes home
            return not fixed and time.monotonic() >= self.stop_at
        try:
            if "idcard.read" in self.methods:
                citizen = self.citizen
                with contextlib.suppress(RpcError):
                    r = await self.call(hal, epoch, "idcard.read",
                                        {"can": can_of(citizen), "timeout_ms": 60000})
                    seen["idcard.read"] = "ok"
                    if r is not None and r.get("id_number") not in (None, citizen["id_number"]) \
                            and self.citizen is citizen:
                        self.fail("idcard.read", "another resident's card data came back")
                await self.think(rng)
            if over():
                return
            if "scale.read" in self.methods:
                with contextlib.suppress(RpcError):
                    await self.call(hal, epoch, "scale.read", {"stable": True, "timeout_ms": 15000})
                    seen["scale.read"] = "ok"
                await self.think(rng)
            if over():
                return
            if "health.measure" in self.methods:
                kind = "weight" if fixed else rng.choice(["blood_pressure", "spo2", "weight",
                                                          "body_composition"])
                # the warm-ups insist: the BLE link a measure leaves connected is an fd counted
                for _ in range(2 if fixed else 1):
                    with contextlib.suppress(RpcError):
                        await self.call(hal, epoch, "health.measure", {"kind": kind, "timeout_ms": 30000})
                        seen["health.measure"] = "ok"
                        break
                await self.think(rng)
            if over():
                return
            if "payment.pay" in self.methods and (fixed or rng.random() < 0.6):
                await self.pay(hal, epoch, rng, f"soak-{tag}")
                seen["payment.pay"] = "ok"
                await self.think(rng)
            if over():
                return
            if "printer.print" in self.methods:
                await self.print_receipt(hal, epoch, f"rcpt-{tag}")
                seen["printer.print"] = "ok"
            if not fixed and rng.random() < 0.3:
                with contextlib.suppress(RpcError):
                    await self.call(hal, epoch, rng.choice(["hal.status", "printer.status", "idcard.status",
                                                            "device.list", "hal.ping"]), {})
        except ConnectionError:
            return

    async def retrying(self, what: Callable[[AsyncClient, int], Awaitable[bool]], hal: AsyncClient,
                       epoch: int, attempts: int = 6) -> None:
        """Run `what` until it reports a final outcome; a killed daemon means a new connection and
        the same idempotency key again (what a kiosk does)."""
        own = False
        try:
            for attempt in range(attempts):
                if attempt and time.monotonic() >= self.stop_at:
                    return  # the load is over: a kiosk would retry; the checks settle payments anyway
                try:
                    if await what(hal, epoch):
                        return
                except ConnectionError:
                    if own:
                        await hal.close()
                    hal, epoch = await self.connect()
                    own = True
                await asyncio.sleep(1.0)
        finally:
            if own:
                await hal.close()

    async def print_receipt(self, hal: AsyncClient, epoch: int, job_id: str) -> None:
        doc = {"blocks": [
            {"type": "qr", "data": job_id, "size": 4},
            {"type": "text", "text": "Tram Cong dan so - bien nhan", "align": "center", "bold": True},
            {"type": "columns", "label": "Le phi", "value": "50.000 VND"},
            {"type": "rule", "style": "dashed"},
            {"type": "text", "text": job_id}]}

        async def once(h: AsyncClient, ep: int) -> bool:
            try:
                r = await self.call(h, ep, "printer.print", {"job_id": job_id, "document": doc,
                                                             "timeout_ms": 90000}, status_key="status")
            except RpcError as exc:
                self.print_results[job_id].append(f"error:{exc.reason}")
                return exc.reason not in ("device_offline", "timeout", "device_busy")
            assert r is not None
            self.print_results[job_id].append(("repeated:" if r.get("repeated") else "") + str(r["status"]))
            return r["status"] != "printing"
        await self.retrying(once, hal, epoch)

    async def pay(self, hal: AsyncClient, epoch: int, rng: random.Random, key: str) -> None:
        # the terminal simulator picks its scenario from the amount modulo 1000
        scenario = rng.choices(range(9), weights=[70, 6, 3, 3, 4, 2, 4, 3, 5])[0]
        amount = rng.randrange(10, 500) * 1000 + scenario

        async def once(h: AsyncClient, ep: int) -> bool:
            try:
                r = await self.call(h, ep, "payment.pay", {"idempotency_key": key, "amount": amount,
                                                           "currency": "VND", "timeout_ms": 60000},
                                    status_key="status")
            except RpcError as exc:
                self.pay_results[key].append(f"error:{exc.reason}")
                return exc.reason not in ("device_offline", "timeout", "terminal_busy")
            assert r is not None
            self.pay_results[key].append(str(r.get("status")))
            return True
        await self.retrying(once, hal, epoch)

    # --- bad requests ---------------------------------------------------------------------
    async def bad_request(self, rng: random.Random, tag: str) -> None:
        kind = rng.choice(["garbage", "oversized", "wrong_params", "unknown_method", "disconnect",
                           "half_line", "batch"])
        await self.daemon_up.wait()
        epoch = self.epoch
        try:
            reader, writer = await asyncio.open_unix_connection(str(self.st.socket), limit=1 << 22)
        except (FileNotFoundError, ConnectionError):
            self.note("bad." + kind, "refused:daemon_restarting")
            return
        method = "bad." + kind
        try:
            expect: set[int] | None = None
            if kind == "garbage":
                junk = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 200))).replace(b"\n", b"")
                writer.write(b"#" + junk + b"\n")
                expect = {-32700, -32600}
            elif kind == "oversized":
                writer.write(b'{"jsonrpc":"2.0","id":1,"method":"hal.ping","params":{"x":"'
                             + b"x" * (1 << 20) + b'"}}\n')
                expect = {-32600}
            elif kind == "wrong_params":
                name, params = rng.choice([
                    ("printer.print", {"job_id": 5}), ("scale.read", {"stable": "yes"}),
                    ("idcard.read", {"can": "12"}), ("buzzer.beep", {"count": -1}),
                    ("payment.pay", {"amount": "lots"}), ("device.claim", {}),
                    ("events.subscribe", {"topics": "all"})])
                if name not in self.methods:
                    name, params = "device.status", {"device": 7}
                writer.write(_line({"jsonrpc": "2.0", "id": 1, "method": name, "params": params}))
                expect = {-32602}
            elif kind == "unknown_method":
                writer.write(json.dumps({"jsonrpc": "2.0", "id": 1, "method": f"no.such{rng.randrange(99)}",
                                         "params": {}}).encode() + b"\n")
                expect = {-32601}
            elif kind == "batch":
                writer.write(b'[{"jsonrpc":"2.0","id":1,"method":"hal.ping"},1,{"jsonrpc":"2.0","id":2}]\n')
                line = await asyncio.wait_for(reader.readline(), ANSWER_CEILING_S)
                replies = json.loads(line) if line else None
                if not isinstance(replies, list) or len(replies) != 3:
                    self.fail(method, f"batch answered {line[:200]!r}")
                else:
                    self.note(method, "answered")
                return
            elif kind == "disconnect":  # a long request, then gone before its answer
                name = rng.choice([m for m in ("idcard.read", "scale.read", "buzzer.beep")
                                   if m in self.methods])
                params = {"can": can_of(self.citizen)} if name == "idcard.read" else {}
                writer.write(_line({"jsonrpc": "2.0", "id": 1, "method": name, "params": params}))
                await writer.drain()
                await asyncio.sleep(rng.uniform(0, 0.5))
                writer.transport.abort()
                self.note(method, "client_gone")
                return
            elif kind == "half_line":
                writer.write(b'{"jsonrpc":"2.0","id":1,"meth')
                await writer.drain()
                writer.transport.abort()
                self.note(method, "client_gone")
                return
            await writer.drain()
            line = await asyncio.wait_for(reader.readline(), ANSWER_CEILING_S)
            if not line:
                raise ConnectionResetError("closed before an answer")
            reply = json.loads(line)
            code = (reply.get("error") or {}).get("code")
            if expect is not None and code not in expect:
                self.fail(method, f"expected an error in {sorted(expect)}, got {line[:200]!r}")
            else:
                reason = (reply["error"].get("data") or {}).get("reason")
                if kind == "oversized":
                    closed = await asyncio.wait_for(reader.read(), ANSWER_CEILING_S) == b""
                    self.note(method, f"{reason}+closed" if closed else f"{reason}+open")
                else:
                    self.note(method, str(reason))
        except TimeoutError:
            self.fail(method, "no answer")
        except (ConnectionError, asyncio.IncompleteReadError, ValueError) as exc:
            if epoch != self.epoch or not self.daemon_up.is_set() or \
                    self.st.daemon is None or self.st.daemon.poll() is not None:
                self.note(method, "closed:daemon_killed")
            else:
                self.fail(method, f"{type(exc).__name__}: {exc}")
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    # --- faults, kills, the day -----------------------------------------------------------
    def fault_menu(self) -> list[Fault]:
        """The faults this station's parts offer (a part or action not there is left out)."""
        menu: list[Fault] = []

        def add(part: str, action: str, args: dict[str, Any], repair: str | None,
                repair_args: dict[str, Any] | None = None) -> None:
            acts = self.parts.get(part, [])
            if action in acts and (repair is None or repair in acts):
                label = f"{part}.{action}" + ("(" + ",".join(f"{k}={v}" for k, v in args.items()) + ")"
                                              if args else "")
                menu.append(Fault(label, part, action, args, repair, repair_args or {}))

        add("cccd_card", "remove", {}, "insert")
        add("cccd_card", "pull_after", {"apdus": 12}, "insert")
        add("escpos_printer", "paper_out", {}, "paper_refill")
        add("escpos_printer", "paper_out", {"after_lines": 20}, "paper_refill")
        add("escpos_printer", "paper_near_end", {}, "paper_refill")
        add("escpos_printer", "cover_open", {}, "cover_close")
        add("escpos_printer", "offline", {}, "online")
        add("escpos_printer", "cutter_error", {}, "clear_error")
        add("escpos_printer", "link_drop", {}, "link_restore")
        add("escpos_printer", "link_drop", {"after_bytes": 500}, "link_restore")
        add("serial_scale", "unplug", {}, "plug")
        add("serial_scale", "silence", {"on": True}, "silence", {"on": False})
        add("serial_scale", "noise", {"size": 64}, None)
        add("serial_scale", "step_off", {}, "step_on", {"kg": 70.0, "settle_s": 0.5})
        add("gpio_panel", "unplug", {}, "plug")
        add("gpio_panel", "garbage", {}, None)
        add("payment_terminal", "crash", {}, None)
        add("payment_terminal", "disconnect", {}, None)
        add("payment_terminal", "busy", {"on": True}, "busy", {"on": False})
        for dev in ("cuff", "oximeter", "scale"):  # the BLE health devices (simulators/ble_station)
            add("ble_station", "drop_link", {"device": dev}, None)
            add("ble_station", "refuse_connects", {"device": dev, "count": 2}, None)
            add("ble_station", "advertise", {"device": dev, "on": False}, "advertise",
                {"device": dev, "on": True})
            add("ble_station", "malformed", {"device": dev, "hex": "0102"}, None)
            add("ble_station", "special", {"device": dev, "value": "NaN"}, None)
        add("ble_station", "cuff_error", {"device": "cuff"}, None)
        add("ble_station", "no_finger", {"device": "oximeter", "on": True}, "no_finger",
            {"device": "oximeter", "on": False})
        return menu

    async def fault_injector(self) -> None:
        rng = random.Random(f"{self.cfg.seed}:faults")
        menu = self.fault_menu()
        if not menu:
            return
        while True:
            await asyncio.sleep(rng.expovariate(1 / self.cfg.fault_mean_s))
            if time.monotonic() >= self.stop_at:
                return
            fault = rng.choice(menu)
            key = f"{fault.part}.{fault.repair or fault.action}.{fault.args.get('device', '')}"
            if key in self.repairs or (fault.part == "cccd_card" and self.card_lock.locked()):
                continue  # already broken that way, or a resident's card is being changed
            try:
                if fault.part == "cccd_card":
                    async with self.card_lock:
                        await self.control(fault.part, fault.action, **fault.args)
                else:
                    await self.control(fault.part, fault.action, **fault.args)
            except (RuntimeError, OSError) as exc:
                self.cfg.log(f"soak: fault {fault.label} not injected: {exc}")
                continue
            self.faults[fault.label] += 1
            if fault.repair:
                self.repairs[key] = (fault.part, fault.repair, fault.repair_args)
                delay = rng.uniform(2.0, 10.0)
                asyncio.get_running_loop().call_later(delay, self._schedule_repair, key)

    def _schedule_repair(self, key: str) -> None:
        task = asyncio.ensure_future(self.repair(key))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def repair(self, key: str) -> None:
        fix = self.repairs.pop(key, None)
        if fix is None:
            return
        part, action, args = fix
        try:
            if part == "cccd_card":
                async with self.card_lock:
                    await self.control(part, action, **args)
            else:
                await self.control(part, action, **args)
        except (RuntimeError, OSError) as exc:
            self.cfg.log(f"soak: repair {part}.{action} failed: {exc}")

    async def repair_all(self) -> None:
        for key in list(self.repairs):
            await self.repair(key)
        # whatever a one-shot fault may have left behind
        leftovers: tuple[tuple[str, str, dict[str, Any]], ...] = (
                     ("escpos_printer", "paper_refill", {}), ("escpos_printer", "link_restore", {}),
                     ("escpos_printer", "cover_close", {}), ("escpos_printer", "online", {}),
                     ("escpos_printer", "clear_error", {}), ("cccd_card", "insert", {}),
                     ("payment_terminal", "busy", {"on": False}))
        for part, action, args in leftovers:
            if action in self.parts.get(part, []):
                with contextlib.suppress(RuntimeError, OSError):
                    await self.control(part, action, **args)

    async def killer(self) -> None:
        """SIGKILL the daemon `kills` times over the first 60 % of the run, restart it at once."""
        if self.cfg.kills <= 0:
            return
        rng = random.Random(f"{self.cfg.seed}:kills")
        span = self.cfg.duration_s * 0.6
        times = sorted(rng.uniform(0.1 * span, span) for _ in range(self.cfg.kills))
        start = self.stop_at - self.cfg.duration_s
        for t in times:
            await asyncio.sleep(max(0.0, start + t - time.monotonic()))
            self.daemon_up.clear()
            self.epoch += 1
            await asyncio.to_thread(self.st.stop_daemon, signal.SIGKILL)
            self.kills += 1
            await asyncio.to_thread(self.st.start_daemon)
            self.daemon_up.set()
            self.cfg.log(f"soak: daemon killed and restarted ({self.kills}/{self.cfg.kills})")

    async def day(self) -> None:
        """Residents come and go: a new card on the reader, a new weight on the scale."""
        rng = random.Random(f"{self.cfg.seed}:day")
        while time.monotonic() < self.stop_at:
            await asyncio.sleep(self.cfg.citizen_every_s)
            if time.monotonic() >= self.stop_at:
                return
            citizen = rng.choice(CITIZENS)
            if "set_citizen" in self.parts.get("cccd_card", []):
                async with self.card_lock:
                    with contextlib.suppress(RuntimeError, OSError, ConnectionError, TimeoutError, RpcError):
                        await self.next_card(citizen)
            person_off = "serial_scale.step_on." in self.repairs
            if not person_off and "step_on" in self.parts.get("serial_scale", []):
                with contextlib.suppress(RuntimeError, OSError):
                    await self.control("serial_scale", "step_on", kg=round(rng.uniform(45, 95), 1),
                                       settle_s=0.5)

    async def next_card(self, citizen: dict[str, str]) -> None:
        """The last resident takes their card; once the reader has seen it go, the next one's."""
        hal, _ = await self.connect()
        try:
            await hal.subscribe("idcard.card_*")
            await self.control("cccd_card", "remove")
            if (await hal.call("idcard.status", {}))["card_present"]:
                await hal.next_event(lambda e: e["topic"] == "idcard.card_removed", timeout_s=30)
        finally:
            await hal.close()
            await self.control("cccd_card", "set_citizen", **citizen)
            self.citizen = citizen
            await self.control("cccd_card", "insert")

    async def spy(self) -> None:
        """A monitoring front-end subscribed to everything: it must keep up and never be cut off
        except by a daemon kill."""
        while time.monotonic() < self.stop_at:
            hal, epoch = await self.connect()
            try:
                await self.call(hal, epoch, "events.subscribe", {"topics": ["*"]})
                while time.monotonic() < self.stop_at:
                    with contextlib.suppress(TimeoutError):
                        await hal.next_event(timeout_s=1.0)
            except ConnectionError:
                pass
            except RpcError:
                pass
            finally:
                await hal.close()

    async def sampler(self) -> None:
        t0 = time.monotonic()
        while True:
            proc = self.st.daemon
            if proc is not None and proc.poll() is None:
                with contextlib.suppress(OSError, ValueError, StopIteration):
                    self.samples.append(Sample(time.monotonic() - t0, proc.pid, *_rss_and_fds(proc.pid)))
            await asyncio.sleep(self.cfg.sample_s)

    # --- checks ---------------------------------------------------------------------------
    async def settle_payments(self) -> None:
        """Wait until the daemon has settled every attempt with the terminal (payment.status per
        key the clients left without a final answer: a kill, a timeout); polled, with a ceiling."""
        if "payment.status" not in self.methods:
            return
        hal, _ = await self.connect()
        try:
            deadline = time.monotonic() + 180
            for key, results in self.pay_results.items():
                if results and results[-1] in FINAL_PAYMENT:
                    continue
                while time.monotonic() < deadline:
                    try:
                        st = await hal.call("payment.status", {"idempotency_key": key})
                    except RpcError:
                        break  # not_found: nothing was journalled under this key
                    if not st.get("settling"):
                        break
                    await asyncio.sleep(0.5)
        finally:
            await hal.close()

    async def check_prints(self) -> dict[str, Any]:
        if "printer.print" not in self.methods:
            return {}
        jobs = (await self.control("escpos_printer", "jobs"))["jobs"]
        return check_receipts(jobs, self.print_results, self.failures)

    async def check_payments(self) -> dict[str, Any]:
        """The terminal's ledger (what it charged) against the daemon's journal and against what
        the clients were told."""
        if "payment.journal" not in self.methods or "ledger" not in self.parts.get("payment_terminal", []):
            return {"available": False}
        ledger = (await self.control("payment_terminal", "ledger"))["records"]
        hal, _ = await self.connect()
        rows: list[dict[str, Any]] = []
        try:
            before: int | None = None
            while True:
                params: dict[str, Any] = {"limit": 1000, **({"before_id": before} if before else {})}
                page = (await hal.call("payment.journal", params))["entries"]
                rows += page
                if len(page) < 1000:
                    break
                before = min(int(r["id"]) for r in page)
        finally:
            await hal.close()
        return check_ledger(ledger, rows, self.pay_results, self.failures)

    def log_summary(self) -> dict[str, Any]:
        """What the daemons logged at warning and above (their log goes with the work dir)."""
        levels: collections.Counter[str] = collections.Counter()
        firsts: dict[str, str] = {}
        for line in self.st.log().splitlines():
            m = re.match(r"\S+ (warning|error|critical)\s+(.*)", line)
            if m:
                levels[m.group(1)] += 1
                key = re.sub(r"\d+", "N", m.group(2))[:60]
                firsts.setdefault(key, m.group(2)[:120])
        return {"levels": dict(levels), "kinds": len(firsts), "examples": list(firsts.values())[:12]}

    def fd_diff(self) -> dict[str, int]:
        """What kind of descriptor the end has more (+) or fewer (-) of than the start."""
        if len(self.fd_kinds) < 2:
            return {}
        a, b = self.fd_kinds[0], self.fd_kinds[-1]
        return {k: b[k] - a[k] for k in sorted(set(a) | set(b)) if b[k] != a[k]}

    def memory(self) -> dict[str, Any]:
        if not self.samples:
            return {}
        last_pid = self.samples[-1].pid
        life = [s for s in self.samples if s.pid == last_pid]
        half = life[len(life) // 2:]
        out: dict[str, Any] = {"samples": len(self.samples), "first_kib": self.samples[0].rss_kib,
                               "peak_kib": max(s.rss_kib for s in self.samples),
                               "life_s": life[-1].t - life[0].t, "half_kib": half[0].rss_kib,
                               "end_kib": life[-1].rss_kib, "target_mib_per_h": 4.0,
                               "lives": [(ls[0].fds, max(x.fds for x in ls), ls[-1].fds)
                                         for ls in _lives(self.samples)],
                               "slope_kib_per_h": None}
        if len(half) >= 10 and half[-1].t - half[0].t >= 20:
            slope = _slope([s.t for s in half], [float(s.rss_kib) for s in half])  # KiB per s
            out["slope_kib_per_h"] = slope * 3600
            # flat: the fitted growth, over an hour, stays under the target; judged only over
            # minutes (a short run's slope is allocator noise, extrapolated 60-fold)
            out["flat"] = (slope * 3600 / 1024 <= out["target_mib_per_h"]
                           if half[-1].t - half[0].t >= MIN_RSS_SPAN_S else None)
        return out


def check_receipts(jobs: list[dict[str, Any]], answers: dict[str, list[str]],
                   failures: list[str]) -> dict[str, Any]:
    """The printer simulator's job records (the paper: each soak receipt carries its job id in a
    QR) against what the clients were answered."""
    on_paper: collections.Counter[str] = collections.Counter()
    for job in jobs:
        markers = {s.get("data") for s in job.get("symbols", []) if s.get("type") == "qr"}
        for m in markers:
            if isinstance(m, str) and m.startswith("rcpt-"):
                on_paper[m] += 1
    every = [a for results in answers.values() for a in results]
    printed = {j for j, results in answers.items() if "printed" in results}
    twice = [j for j, n in on_paper.items() if n > 1]
    lost = [j for j in printed if on_paper[j] == 0]
    failures += [f"printer: receipt {j} on paper {on_paper[j]} times: {answers.get(j)}" for j in twice]
    failures += [f"printer: receipt {j} answered printed but not on paper" for j in lost]
    return {"jobs_on_paper": sum(on_paper.values()), "printed": len(printed),
            "failed": sum(1 for a in every if a.endswith("failed")),
            "repeated": sum(1 for a in every if a.startswith("repeated:")),
            "twice": len(twice), "lost": len(lost)}


def check_ledger(ledger: list[dict[str, Any]], rows: list[dict[str, Any]], answers: dict[str, list[str]],
                 failures: list[str]) -> dict[str, Any]:
    """The terminal's ledger (what it charged, by the payment request's ServiceID) against the
    journal's rows (payment.journal) and the clients' answers per idempotency key."""
    charges = [r for r in ledger if r.get("kind") == "payment"]
    by_service = {r["service_id"]: r for r in rows}
    charged: collections.Counter[str] = collections.Counter()
    mismatched: list[str] = []
    for rec in charges:
        row = by_service.get(rec.get("service_id"))
        if rec.get("state") != "approved":
            if row is not None and row["state"] in ("approved", "reversed", "reversing"):
                mismatched.append(f"journal {row['state']}, terminal {rec.get('state')}: {rec['key']}")
            continue
        if row is None:
            mismatched.append(f"terminal charged {rec['key']} with no journal entry")
            continue
        charged[row["idempotency_key"]] += 1
        want = "reversed" if rec.get("reversed") else "approved"
        amount = int(row.get("authorized_amount") or 0)
        if row["state"] != want or amount != int(rec["authorized_amount"]):
            mismatched.append(f"terminal {want} {rec['authorized_amount']}, journal {row['state']} "
                              f"{row.get('authorized_amount')}: {row['idempotency_key']}")
    approved_services = {r.get("service_id") for r in charges if r.get("state") == "approved"}
    for row in rows:
        if row["state"] in ("approved", "reversed") and row["service_id"] not in approved_services:
            mismatched.append(f"journal {row['state']} but no charge on the terminal: "
                              f"{row['idempotency_key']}")
    doubled = [k for k, n in charged.items() if n > 1]
    told = {k for k, results in answers.items() if "approved" in results}
    lost = [k for k in told if charged[k] == 0]
    failures += [f"payment: {k} charged {charged[k]} times" for k in doubled]
    failures += [f"payment: {k} answered approved, never charged" for k in lost]
    failures += [f"payment: {m}" for m in mismatched]
    return {"available": True, "keys": len(answers), "approved": len(told),
            "ledger_charges": sum(charged.values()), "journal_rows": len(rows),
            "doubled": len(doubled), "lost": len(lost), "mismatched": len(mismatched)}


def fd_kinds(pid: int) -> collections.Counter[str]:
    """A process's descriptors by what they are: files by path, sockets by the path or process
    at the other end (ss), TCP by port, so a count that moved says what moved."""
    names: dict[str, str] = {}
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        out = subprocess.run(["ss", "-xpan"], capture_output=True, text=True, timeout=30).stdout
        rows = [ln.split(None, 8) for ln in out.splitlines()[1:]]
        local = {r[5]: (r[4], r[8] if len(r) > 8 else "") for r in rows if len(r) >= 8}
        for r in rows:
            if len(r) < 8:
                continue
            path, peer = r[4], r[7]
            peer_path, peer_proc = local.get(peer, ("*", ""))
            who = re.search(r'\(\("([^"]+)"', peer_proc)
            names[r[5]] = ("unix:" + (path if path != "*" else peer_path if peer_path != "*"
                                      else f"peer {who.group(1) if who else '?'}"))
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for ln in pathlib.Path(table).read_text().splitlines()[1:]:
                f = ln.split()
                lport, rport = (int(a.rsplit(":", 1)[1], 16) for a in (f[1], f[2]))
                names[f[9]] = f"tcp to port {rport}" if rport else f"tcp listening on {lport}"
    kinds: collections.Counter[str] = collections.Counter()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        with contextlib.suppress(OSError):
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
            m = re.fullmatch(r"socket:\[(\d+)\]", target)
            # a re-plugged serial line is another pty: count ptys, not which
            plain = re.sub(r"^/dev/pts/\d+$", "/dev/pts/*", re.sub(r"\[\d+\]$", "", target))
            kinds[names.get(m.group(1), "socket") if m else plain] += 1
    return kinds


def _lives(samples: list[Sample]) -> list[list[Sample]]:
    lives: list[list[Sample]] = []
    for x in samples:
        if not lives or lives[-1][-1].pid != x.pid:
            lives.append([])
        lives[-1].append(x)
    return lives


def _line(msg: dict[str, Any]) -> bytes:
    return json.dumps(msg).encode() + b"\n"


def _rss_and_fds(pid: int) -> tuple[int, int]:
    status = pathlib.Path(f"/proc/{pid}/status").read_text()
    rss = int(next(ln.split()[1] for ln in status.splitlines() if ln.startswith("VmRSS:")))
    return rss, len(os.listdir(f"/proc/{pid}/fd"))


def _slope(xs: list[float], ys: list[float]) -> float:
    n = len(xs)
    mx, my = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mx) ** 2 for x in xs)
    if sxx == 0 or math.isnan(sxx):
        return 0.0
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sxx
