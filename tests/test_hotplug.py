"""halsvc.hotplug against a udev that umockdev emulates: devices are added and removed in a
testbed, pyudev's real netlink monitor sees the uevents, and the monitor's callbacks follow.

umockdev only works in a process started by `umockdev-wrapper` (it preloads its libudev and
sysfs redirection). Run outside it, this module has a single test that runs the module again
under the wrapper and reports that run's result.
"""

from __future__ import annotations

import asyncio
import pathlib
from collections.abc import Iterator, Mapping
from typing import Any
from unittest import mock

import pytest
from umockdev_rerun import UNDER_UMOCKDEV, rerun_test

ROOT = pathlib.Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.umockdev
DEADLINE = 5.0  # a failure deadline for waiting on a callback, not a performance figure

if not UNDER_UMOCKDEV:
    test_hotplug_under_umockdev_wrapper = rerun_test(__file__)

else:
    import gi

    gi.require_version("UMockdev", "1.0")
    from gi.repository import UMockdev

    from halsvc.hotplug import HotplugMonitor, guess_kind, list_hardware

    BARRIER = "barrier"
    unittest_any = mock.ANY

    class Bench:
        """A umockdev testbed and a monitor whose callbacks land in a queue."""

        def __init__(self, testbed: Any) -> None:
            self.testbed = testbed
            self.calls: asyncio.Queue[tuple[Any, ...]] = asyncio.Queue()
            self._bus = 0

        def present(self, key: str, devnode: str, props: Mapping[str, str]) -> None:
            self.calls.put_nowait(("present", key, devnode, dict(props)))

        def absent(self, key: str) -> None:
            self.calls.put_nowait(("absent", key))

        async def next_call(self) -> tuple[Any, ...]:
            return await asyncio.wait_for(self.calls.get(), DEADLINE)

        async def no_call_pending(self) -> None:
            """Everything udev said so far has been handled and gave no callback: a marker
            device plugged now reaches the monitor after every earlier event, so the first
            callback must be the marker's own (see BARRIER)."""
            marker = self.usb_serial("ffff", "ffff", tty="ttyMARK0", devname="/dev/null")
            assert await self.next_call() == ("present", BARRIER, "/dev/null", unittest_any)
            self.unplug(marker)
            assert await self.next_call() == ("absent", BARRIER)

        def usb_device(self, vendor: str, product: str, props: Mapping[str, str] = {}) -> str:
            self._bus += 1
            name = f"usb1/1-{self._bus}"
            flat_props = ["DEVTYPE", "usb_device", "DEVNAME", f"/dev/bus/usb/001/{self._bus:03d}"]
            for k, v in props.items():
                flat_props += [k, v]
            return self.testbed.add_device("usb", name, None,
                                           ["idVendor", vendor, "idProduct", product, "serial", "SN42"],
                                           flat_props)

        def usb_serial(self, vendor: str, product: str, *, tty: str = "ttyACM0",
                       devname: str | None = None, props: Mapping[str, str] = {},
                       with_ids: bool = True) -> str:
            """A USB device with one tty node, as udev describes a plugged-in adapter."""
            parent = self.usb_device(vendor, product)
            flat = ["DEVNAME", devname or f"/dev/{tty}"]
            if with_ids:
                flat += ["ID_VENDOR_ID", vendor, "ID_MODEL_ID", product, "ID_BUS", "usb"]
            for k, v in props.items():
                flat += [k, v]
            return self.testbed.add_device("tty", tty, parent, [], flat)

        def unplug(self, sys_path: str) -> None:
            # remove_device alone sends no uevent; a real unplug does.
            self.testbed.uevent(sys_path, "remove")
            self.testbed.remove_device(sys_path)

    @pytest.fixture
    def testbed() -> Iterator[Any]:
        bed = UMockdev.Testbed.new()
        yield bed
        del bed

    async def started(bench: Bench, selectors: Mapping[str, Mapping[str, str]]) -> HotplugMonitor:
        monitor = HotplugMonitor({**selectors, BARRIER: {"ID_VENDOR_ID": "ffff"}},
                                 bench.present, bench.absent)
        monitor.start()
        await asyncio.wait_for(monitor.enumerated.wait(), DEADLINE)
        return monitor

    def run(coro: Any) -> None:
        asyncio.run(coro)

    STM_VCP = {"ID_VENDOR_ID": "0483", "ID_MODEL_ID": "5740"}

    def test_plug_and_unplug_of_a_usb_serial_device_follow_in_the_callbacks(testbed: Any) -> None:
        async def body() -> None:
            bench = Bench(testbed)
            monitor = await started(bench, {"scale0": STM_VCP})
            try:
                assert bench.calls.empty()
                tty = bench.usb_serial("0483", "5740", devname="/dev/pts/77")
                call = await bench.next_call()
                assert call[:3] == ("present", "scale0", "/dev/pts/77")
                assert call[3]["ID_VENDOR_ID"] == "0483"
                assert monitor.present() == {"scale0": "/dev/pts/77"}
                bench.unplug(tty)
                assert await bench.next_call() == ("absent", "scale0")
                assert monitor.present() == {}
                # and again: nothing is left over from the first time
                tty = bench.usb_serial("0483", "5740", tty="ttyACM1")
                assert (await bench.next_call())[:3] == ("present", "scale0", "/dev/ttyACM1")
                bench.unplug(tty)
                assert await bench.next_call() == ("absent", "scale0")
            finally:
                monitor.stop()
        run(body())

    def test_device_already_plugged_in_is_found_by_the_initial_enumeration(testbed: Any) -> None:
        async def body() -> None:
            bench = Bench(testbed)
            bench.usb_serial("0483", "5740", tty="ttyACM3")
            monitor = await started(bench, {"scale0": STM_VCP, "printer0": {"HALSVC_KIND": "printer"}})
            try:
                assert (await bench.next_call())[:3] == ("present", "scale0", "/dev/ttyACM3")
                await bench.no_call_pending()
            finally:
                monitor.stop()
        run(body())

    def test_selectors_by_kind_by_symlink_and_by_serial(testbed: Any) -> None:
        async def body() -> None:
            bench = Bench(testbed)
            monitor = await started(bench, {
                "scale0": {"HALSVC_KIND": "scale"},
                "pay0": {"symlink": "halsvc/payment-0"},
                "scale1": {"ID_SERIAL_SHORT": "SN42", "ID_VENDOR_ID": "1a86"},
            })
            try:
                bench.usb_serial("0403", "6001", tty="ttyUSB0", props={"HALSVC_KIND": "scale"})
                assert (await bench.next_call())[:3] == ("present", "scale0", "/dev/ttyUSB0")
                bench.usb_serial("0b00", "0080", tty="ttyACM0",
                                 props={"DEVLINKS": "/dev/halsvc/payment-0 /dev/serial/by-id/ingenico"})
                assert (await bench.next_call())[:3] == ("present", "pay0", "/dev/ttyACM0")
                # USB ids and serial known only to the parent USB device (no usb_id import)
                bench.usb_serial("1a86", "7523", tty="ttyUSB1", with_ids=False)
                call = await bench.next_call()
                assert call[:3] == ("present", "scale1", "/dev/ttyUSB1")
                assert call[3]["ID_SERIAL_SHORT"] == "SN42"
            finally:
                monitor.stop()
        run(body())

    def test_unrelated_devices_cause_no_callbacks(testbed: Any) -> None:
        async def body() -> None:
            bench = Bench(testbed)
            monitor = await started(bench, {"scale0": STM_VCP})
            try:
                tty = bench.usb_serial("0483", "5741")  # another product of the same vendor
                await bench.no_call_pending()
                bench.unplug(tty)
                await bench.no_call_pending()
            finally:
                monitor.stop()
        run(body())

    def test_the_tty_node_is_chosen_not_the_whole_usb_device_unless_asked(testbed: Any) -> None:
        async def body() -> None:
            bench = Bench(testbed)
            monitor = await started(bench, {"scale0": STM_VCP,
                                            "raw0": {**STM_VCP, "SUBSYSTEM": "usb"}})
            try:
                parent = bench.usb_device("0483", "5740", STM_VCP)
                assert (await bench.next_call())[:2] == ("present", "raw0")
                props = ["DEVNAME", "/dev/ttyACM0", "ID_VENDOR_ID", "0483", "ID_MODEL_ID", "5740"]
                bench.testbed.add_device("tty", "ttyACM0", parent, [], props)
                assert (await bench.next_call())[:3] == ("present", "scale0", "/dev/ttyACM0")
                await bench.no_call_pending()
            finally:
                monitor.stop()
        run(body())

    def test_second_matching_port_takes_over_with_absent_before_present(testbed: Any) -> None:
        async def body() -> None:
            bench = Bench(testbed)
            monitor = await started(bench, {"scale0": {"HALSVC_KIND": "scale"}})
            try:
                first = bench.usb_serial("0403", "6001", tty="ttyUSB0", props={"HALSVC_KIND": "scale"})
                assert (await bench.next_call())[:3] == ("present", "scale0", "/dev/ttyUSB0")
                bench.usb_serial("0403", "6001", tty="ttyUSB1", props={"HALSVC_KIND": "scale"})
                await bench.no_call_pending()  # the first one stays in use
                bench.unplug(first)
                assert await bench.next_call() == ("absent", "scale0")
                assert (await bench.next_call())[:3] == ("present", "scale0", "/dev/ttyUSB1")
            finally:
                monitor.stop()
        run(body())

    def test_change_event_that_stops_matching_makes_the_device_absent(testbed: Any) -> None:
        async def body() -> None:
            bench = Bench(testbed)
            monitor = await started(bench, {"scale0": {"HALSVC_KIND": "scale"}})
            try:
                tty = bench.usb_serial("0403", "6001", tty="ttyUSB0", props={"HALSVC_KIND": "scale"})
                assert (await bench.next_call())[0] == "present"
                bench.testbed.set_property(tty, "HALSVC_KIND", "payment")
                bench.testbed.uevent(tty, "change")
                assert await bench.next_call() == ("absent", "scale0")
            finally:
                monitor.stop()
        run(body())

    def test_a_failing_callback_does_not_stop_hotplug(testbed: Any) -> None:
        async def body() -> None:
            bench = Bench(testbed)
            seen: asyncio.Queue[str] = asyncio.Queue()

            def present(key: str, devnode: str, props: Mapping[str, str]) -> None:
                seen.put_nowait(devnode)
                raise RuntimeError("registry bug")

            monitor = HotplugMonitor({"scale0": {"HALSVC_KIND": "scale"}}, present, bench.absent)
            monitor.start()
            try:
                first = bench.usb_serial("0403", "6001", tty="ttyUSB0", props={"HALSVC_KIND": "scale"})
                assert await asyncio.wait_for(seen.get(), DEADLINE) == "/dev/ttyUSB0"
                bench.unplug(first)
                assert await bench.next_call() == ("absent", "scale0")
                bench.usb_serial("0403", "6001", tty="ttyUSB1", props={"HALSVC_KIND": "scale"})
                assert await asyncio.wait_for(seen.get(), DEADLINE) == "/dev/ttyUSB1"
            finally:
                monitor.stop()
        run(body())

    def test_hardware_listing_shows_matched_and_unmatched_devices(testbed: Any) -> None:
        async def body() -> None:
            bench = Bench(testbed)
            bench.usb_serial("1a86", "7523", tty="ttyUSB0")  # a CH340: a scale by its ids
            bench.usb_serial("0483", "5740", tty="ttyACM0", props={"HALSVC_KIND": "payment"})
            bench.usb_serial("abcd", "0001", tty="ttyACM1")  # nothing we know
            bench.testbed.add_device("tty", "ttyS0", None, [], ["DEVNAME", "/dev/ttyS0"])
            monitor = await started(bench, {"pay0": STM_VCP})
            try:
                await bench.next_call()
                listing = monitor.hardware()
                by_node = {e["devnode"]: e for e in listing}
                assert set(by_node) == {"/dev/ttyUSB0", "/dev/ttyACM0"}
                assert by_node["/dev/ttyUSB0"]["kind"] == "scale"
                assert by_node["/dev/ttyUSB0"]["kind_from"] == "usb_ids"
                assert by_node["/dev/ttyUSB0"]["matched"] == [] and by_node["/dev/ttyUSB0"]["driving"] is None
                assert by_node["/dev/ttyACM0"]["kind"] == "payment"
                assert by_node["/dev/ttyACM0"]["kind_from"] == "udev"
                assert by_node["/dev/ttyACM0"]["matched"] == ["pay0"]
                assert by_node["/dev/ttyACM0"]["driving"] == "pay0"
                # the same without a daemon, from halctl's side
                assert {e["devnode"] for e in list_hardware()} == set(by_node)
            finally:
                monitor.stop()
        run(body())

    def test_guess_kind_reads_usb_interface_classes() -> None:
        assert guess_kind("usb", "072f", "90cc", ":0b0000:") == "idcard"
        assert guess_kind("usb", "28e9", "0289", ":070102:") == "printer"
        assert guess_kind("usbmisc", None, None, kernel_name="lp0") == "printer"
        assert guess_kind("tty", "10C4", "EA60") == "scale"
        assert guess_kind("tty", "abcd", "0001") is None
