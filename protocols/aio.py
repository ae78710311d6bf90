"""The asyncio shim shared by CPython and MicroPython (DESIGN §6).

Protocol code that needs time or tasks imports these names instead of `asyncio` or `time`
directly, so the same file runs unchanged on both interpreters.
"""
try:
    import uasyncio as asyncio  # MicroPython before 1.21 names it so
except ImportError:
    import asyncio

try:
    from time import ticks_diff, ticks_ms  # type: ignore[attr-defined]  # MicroPython only
except ImportError:
    import time as _time

    _MASK = (1 << 30) - 1  # MicroPython's small-int tick period; keep arithmetic identical

    def ticks_ms():
        return int(_time.monotonic() * 1000) & _MASK

    def ticks_diff(a, b):
        half = (_MASK + 1) >> 1
        return ((a - b + half) & _MASK) - half


try:
    from micropython import const
except ImportError:

    def const(x):
        return x


Event = asyncio.Event
create_task = asyncio.create_task
TimeoutError = asyncio.TimeoutError


def sleep_ms(ms):
    """Sleep `ms` milliseconds (an awaitable)."""
    if hasattr(asyncio, "sleep_ms"):
        return asyncio.sleep_ms(ms)
    return asyncio.sleep(ms / 1000)


async def wait_for_ms(awaitable, ms):
    """Await `awaitable` for at most `ms` milliseconds, else raise TimeoutError."""
    if hasattr(asyncio, "wait_for_ms"):
        return await asyncio.wait_for_ms(awaitable, ms)
    return await asyncio.wait_for(awaitable, ms / 1000)


async def gather(*coros):
    """Run coroutines concurrently and return their results in order."""
    return await asyncio.gather(*coros)


def run(coro):
    return asyncio.run(coro)
