"""Our org.bluez stand-in against unmodified bleak over a private dbus-daemon: the path a BLE
health device takes (scan by service, connect, set the clock, subscribe, RACP stored records)
and the faults that bluezoo cannot do (a refused connect, a link the device drops, a reconnect
of the same device). The daemon's own use of it is tests/test_ble_daemon.py."""

from __future__ import annotations

import asyncio
import pathlib
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from bleak import BleakClient, BleakScanner
from bleak.backends.bluezdbus.manager import get_global_bluez_manager
from bleak.exc import BleakDBusError, BleakGATTProtocolError, BleakGATTProtocolErrorCode
from conftest import run
from dbus_fast import Message, MessageType
from dbus_fast.aio import MessageBus

from protocols.gatt_health import blood_pressure, current_time, racp, uuid16
from simulators.ble_station import BleStation, start_station
from simulators.ble_station.bluez import GattCharacteristic

Body = Callable[[BleStation], Awaitable[None]]


def with_station(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch, body: Body) -> None:
    async def go() -> None:
        loop = asyncio.get_running_loop()

        def quiet(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
            # bleak drops its bus after a refused connect and dbus-fast's reader ends with an
            # EOFError nobody awaits; anything else is reported as usual.
            if not isinstance(context.get("exception"), EOFError):
                loop.default_exception_handler(context)

        loop.set_exception_handler(quiet)
        st = await start_station(tmp_path, {"step_ms": 5})
        monkeypatch.setenv("DBUS_SYSTEM_BUS_ADDRESS", st.bus.address)
        try:
            await asyncio.wait_for(body(st), 60)
        finally:
            # bleak's shared bus connection goes before the bus does, so it does not see an EOF.
            manager = await get_global_bluez_manager()
            if manager._bus is not None:
                manager._bus.disconnect()
            await st.stop()

    run(go())


async def _find(service: int) -> Any:
    dev = await BleakScanner.find_device_by_filter(lambda d, a: True, timeout=20,
                                                   service_uuids=[uuid16(service)])
    assert dev is not None
    return dev


def test_bleak_scans_connects_sets_the_clock_and_reads_stored_records(
        tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> None:
    async def body(st: BleStation) -> None:
        cuff = st.peripherals["cuff"]
        cuff.auto_start = False
        await cuff.control("stored", {"readings": [{"systolic": 131, "timestamp": [2026, 12, 1, 7, 5, 0]}]})
        dev = await _find(0x1810)
        assert (dev.address, dev.name) == ("AA:10:00:00:00:01", "HAL BP Cuff")
        got: asyncio.Queue[tuple[str, bytes]] = asyncio.Queue()
        async with BleakClient(dev) as c:
            now = current_time.encode((2026, 12, 4, 9, 30, 0), 5)
            await c.write_gatt_char(uuid16(0x2A2B), now, response=True)
            clock = current_time.decode(await c.read_gatt_char(uuid16(0x2A2B)))
            assert clock["date_time"][:3] == (2026, 12, 4)
            await c.start_notify(uuid16(0x2A52), lambda ch, d: got.put_nowait(("racp", bytes(d))))
            await c.start_notify(uuid16(0x2A35), lambda ch, d: got.put_nowait(("bpm", bytes(d))))
            await c.write_gatt_char(uuid16(0x2A52), racp.report_stored_records(), response=True)
            kind, raw = await got.get()
            m = blood_pressure.decode_measurement(raw)
            assert kind == "bpm" and m["systolic"] == 131 and m["timestamp"] == (2026, 12, 1, 7, 5, 0)
            assert await got.get() == ("racp", racp.response_code(1, racp.SUCCESS))
            # The resident presses start: live cuff pressure, then the reading on the set clock.
            await c.start_notify(uuid16(0x2A36), lambda ch, d: got.put_nowait(("icp", bytes(d))))
            await cuff.control("press_start", {})
            pressures = []
            while (item := await got.get())[0] == "icp":
                pressures.append(blood_pressure.decode_intermediate_cuff_pressure(item[1])["cuff_pressure"])
            assert max(pressures) == 180 and item[0] == "bpm"
            assert blood_pressure.decode_measurement(item[1])["timestamp"][:3] == (2026, 12, 4)

    with_station(tmp_path, monkeypatch, body)


def test_refused_connect_dropped_link_and_reconnect(tmp_path: pathlib.Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    async def body(st: BleStation) -> None:
        await st.peripherals["scale"].control("refuse_connects", {"count": 1})
        dev = await _find(0x181D)
        with pytest.raises(BleakDBusError) as info:
            await BleakClient(dev).connect()
        assert info.value.dbus_error == "org.bluez.Error.Failed"
        lost = asyncio.Event()
        c = BleakClient(dev, disconnected_callback=lambda _c: lost.set())
        await c.connect()
        await st.peripherals["scale"].control("drop_link", {})
        await lost.wait()
        assert not c.is_connected
        await c.connect()  # the same device again: its GATT objects are exported anew
        assert (await c.read_gatt_char(uuid16(0x2A19)))[0] == 90
        await c.disconnect()
        assert st.peripherals["scale"].stats["connects"] == 2

    with_station(tmp_path, monkeypatch, body)


def test_not_authorized_until_paired(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> None:
    async def body(st: BleStation) -> None:
        await st.peripherals["cuff"].control("require_pairing", {"on": True})
        dev = await _find(0x1810)
        async with BleakClient(dev) as c:
            # org.bluez.Error.NotAuthorized, which bleak turns back into the ATT error.
            with pytest.raises(BleakGATTProtocolError) as gatt:
                await c.start_notify(uuid16(0x2A35), lambda ch, d: None)
            assert gatt.value.code == BleakGATTProtocolErrorCode.INSUFFICIENT_AUTHORIZATION
            # Without an agent the bond cannot complete (the driver registers one: test_ble_daemon).
            with pytest.raises(BleakDBusError) as info:
                await c.pair()
            assert info.value.dbus_error == "org.bluez.Error.AuthenticationFailed"
            assert (await c.read_gatt_char(uuid16(0x2A19)))[0] == 90  # battery needs no bond

    with_station(tmp_path, monkeypatch, body)


def test_a_vanished_central_leaves_the_link_up_and_its_notifications_end(
        tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """As bluetoothd does when the process that connected a device dies (a SIGKILLed daemon):
    Connected stays true, so the device does not advertise; only that client's notify sessions end."""
    async def body(st: BleStation) -> None:
        dev = await _find(0x181D)
        path = dev.details["path"]
        scale = st.peripherals["scale"]
        # A central of its own bus connection, as another process would be.
        central = await MessageBus(bus_address=st.bus.address).connect()
        reply = await central.call(Message(destination="org.bluez", path=path, interface="org.bluez.Device1",
                                           member="Connect"))
        assert reply is not None and reply.message_type == MessageType.METHOD_RETURN, reply
        char = next(g for _, g in st.bluez.devices[scale.address].gatt
                    if isinstance(g, GattCharacteristic) and g.char.uuid == uuid16(0x2A9D))
        stopped = asyncio.Event()
        original = char.emit_properties_changed

        def watch(changed: dict[str, Any], invalidated: list[str] | None = None) -> None:
            original(changed, invalidated or [])
            if changed.get("Notifying") is False:
                stopped.set()
        char.emit_properties_changed = watch  # type: ignore[method-assign]
        cpath = next(p for p, g in st.bluez.devices[scale.address].gatt if g is char)
        reply = await central.call(Message(destination="org.bluez", path=cpath,
                                           interface="org.bluez.GattCharacteristic1", member="StartNotify"))
        assert reply is not None and reply.message_type == MessageType.METHOD_RETURN, reply
        assert char.char.notifying
        central.disconnect()
        await stopped.wait()
        assert scale.connected and st.bluez.devices[scale.address].connected
        assert not st.bluez._visible(scale)  # a connected device does not advertise

    with_station(tmp_path, monkeypatch, body)
