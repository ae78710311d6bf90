"""Payments: crash trials by the hundred, and the driver's throughput against its wire.

    python bench/payment.py [--trials 200] [--seed N] [--payments 200]

1. Crash safety at scale: the seeded kill -9 trials of tests/test_payment_crash.py (kill points
   inside the driver — journalled not sent, sent, answered not journalled, journalled not
   answered, link gone, during start-up recovery — and from outside at the n-th prompt), many more
   of them; prints how many trials, where the daemon died, the journal states the kills left, and
   whether the terminal's ledger and the journal agree (every charge exactly once).
2. Throughput: sequential payments through halsvc (RPC → driver → journal with fsync → nexo over
   TCP → the simulated terminal with no prompt delay, which fsyncs its own ledger) against a
   replay of the same frames over TCP (the request, the terminal's prompts and its answer, echoed
   by a bare asyncio server) measured in the same run: the ratio is what the journal, the state
   machine, the simulator and the RPC cost on top of the wire.
"""

from __future__ import annotations

import argparse
import asyncio
import pathlib
import sys
import time
from typing import Any

ROOT = pathlib.Path(__file__).resolve().parent.parent
for p in (ROOT, ROOT / "tests", ROOT / "bench"):
    sys.path.insert(0, str(p))

import payment_trials as pt  # noqa: E402
from benchjson import emit, figure  # noqa: E402
from harness import Station  # noqa: E402

from protocols.nexo import framing  # noqa: E402
from protocols.nexo import messages as m  # noqa: E402


def crash_trials(seed: int, count: int) -> dict[str, Any]:
    st = Station(only={pt.PART}).start(daemon=False)
    try:
        t0 = time.monotonic()
        trials = []
        for i, t in enumerate(pt.plan(seed, count)):
            trials.append(pt.run_trial(st, t))
            if (i + 1) % 25 == 0:
                print(f"  {i + 1}/{count} trials", flush=True)
        summary = pt.check(st, trials)  # raises on any lost or doubled charge
        summary["seconds"] = time.monotonic() - t0
        summary["ok"] = True
        return summary
    finally:
        st.stop()


async def _through_halsvc(st: Station, n: int) -> float:
    async with st.client() as hal:
        await st.until_online(hal, pt.DEV)
        st.control(pt.PART, "set", prompt_ms=0)
        await hal.call("payment.pay", {"amount": 1000, "idempotency_key": "warm-up"})
        t0 = time.perf_counter()
        for i in range(n):
            r = await hal.call("payment.pay", {"amount": 150000, "idempotency_key": f"tp-{i}",
                                               "reference": f"BILL-{i}"})
            assert r["status"] == "approved"
        return n / (time.perf_counter() - t0)


def _exchange() -> tuple[bytes, bytes]:
    """The frames of one approved payment: the request, and the terminal's prompts + answer."""
    req = m.payment_request("2AIV8OA6", "KIOSK-01", "TERM-01", "2AIV8OA6", "2026-12-04T09:15:00+07:00",
                            150000, "VND", "BILL-1")
    hdr = req[m.REQUEST]["MessageHeader"]
    answer = b"".join(framing.encode_frame(m.encode(m.display_request("2AIV8OA6", "KIOSK-01", "TERM-01", t)))
                      for t in ("PRESENT CARD", "ENTER PIN", "PROCESSING", "APPROVED"))
    answer += framing.encode_frame(m.encode(m.payment_response(
        hdr, "Success", poi_transaction_id="P000001", poi_timestamp="2026-12-04T09:15:01+07:00",
        sale_transaction=req[m.REQUEST]["PaymentRequest"]["SaleData"]["SaleTransactionID"],
        authorized_amount=150000, reconciliation_id="1000")))
    return framing.encode_frame(m.encode(req)), answer


async def _wire_replay(n: int) -> float:
    request, answer = _exchange()

    served = asyncio.Event()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                await reader.readexactly(len(request))
                writer.write(answer)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()
        finally:
            served.set()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        t0 = time.perf_counter()
        for _ in range(n):
            writer.write(request)
            await writer.drain()
            decoder = framing.FrameDecoder()
            got = 0
            while got < 5:  # four prompts and the answer, decoded as the driver would
                decoder.receive_data(await reader.read(65536))
                while (frame := decoder.next_frame()) is not None:
                    m.decode(frame)
                    got += 1
        return n / (time.perf_counter() - t0)
    finally:
        writer.close()
        await writer.wait_closed()
        await served.wait()  # the server side saw the end: nothing left running
        server.close()
        await server.wait_closed()


def throughput(n: int) -> tuple[float, float]:
    st = Station(only={pt.PART}).start()
    try:
        ours = asyncio.run(_through_halsvc(st, n))
    finally:
        st.stop()
    wire = asyncio.run(_wire_replay(n))
    return ours, wire


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--trials", type=int, default=200)
    ap.add_argument("--seed", type=int, default=8)
    ap.add_argument("--payments", type=int, default=200)
    args = ap.parse_args()

    print(f"crash trials: {args.trials}, seed {args.seed}", flush=True)
    s = crash_trials(args.seed, args.trials)
    print(f"  {s['trials']} trials in {s['seconds']:.0f} s; {s['attempts']} attempts journalled, "
          f"{s['charges']} charges on the terminal")
    print(f"  daemon killed at: {dict(sorted(s['killed_at'].items()))}")
    print(f"  journal states the kills left: {dict(sorted(s['journal_after_kill'].items()))}")
    print(f"  outcomes the retrying clients got: {dict(sorted(s['outcomes'].items()))}")
    print("  ledger vs journal: every charge exactly once, as the client was told")

    ours, wire = throughput(args.payments)
    ratio = wire / ours
    print(f"throughput, {args.payments} sequential payments: halsvc {ours:.1f}/s, "
          f"wire replay {wire:.0f}/s: {ratio:.1f}x slower than the bare wire "
          f"({1000 / ours:.1f} ms a payment: 3 fsynced journal commits, 2 ledger fsyncs, RPC)")
    kills = sum(s["killed_at"].values())
    emit("payment", [
        figure("crash trials (kill -9 at seeded points)", s["trials"], "count", None),
        figure("daemon kills survived", kills, "count", None),
        figure("kill points reached", len(s["killed_at"]), "count", ">= 7"),
        figure("charges lost or doubled (ledger vs journal)", 0 if s["ok"] else 1, "count", "== 0"),
        figure("payment time, halsvc / wire replay of the same frames", ratio, "x", None),
        figure("payments per second through halsvc", ours, "1/s", None),
    ])


if __name__ == "__main__":
    main()
