"""Hot-plug through the daemon: a USB-serial scale appears in a umockdev testbed, the daemon's
pyudev monitor sees the uevent, and the device goes no_device → starting → online, visible
through the RPC; unplugged mid-read, the read fails with link_lost and the device returns to
no_device; plugged back, it serves again. No restart anywhere.

The testbed's /dev/ttyUSB0 is a link to the simulated scale's pty, so the daemon opens the node
udev announced and talks to a real simulator behind it. Like tests/test_hotplug.py, outside
`umockdev-wrapper` this module re-runs itself under it.
"""

from __future__ import annotations

import asyncio
import os
import pathlib
from typing import Any

import pytest
from umockdev_rerun import UNDER_UMOCKDEV, rerun_test

ROOT = pathlib.Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.umockdev

if not UNDER_UMOCKDEV:
    test_daemon_hotplug_under_umockdev_wrapper = rerun_test(__file__)

else:
    import gi

    gi.require_version("UMockdev", "1.0")
    from gi.repository import UMockdev
    from harness import Station

    from halsvc.client import AsyncClient, RpcError

    class Bed:
        """The testbed, with one FTDI adapter that can be plugged in and pulled out."""

        def __init__(self, target: str) -> None:
            self.bed = UMockdev.Testbed.new()
            self.root = pathlib.Path(self.bed.get_root_dir())
            self.target = target  # the simulated scale's pty
            self.usb: str | None = None
            self.tty: str | None = None

        def plug(self) -> None:
            ids = ["ID_VENDOR_ID", "0403", "ID_MODEL_ID", "6001"]
            self.usb = self.bed.add_device("usb", "1-1", None, ["idVendor", "0403", "idProduct", "6001"],
                                           [*ids, "DEVTYPE", "usb_device"])
            node = self.root / "dev" / "ttyUSB0"
            node.parent.mkdir(exist_ok=True)
            if node.is_symlink() or node.exists():
                node.unlink()
            node.symlink_to(self.target)
            self.tty = self.bed.add_device(
                "tty", "ttyUSB0", self.usb, ["dev", "188:0"],
                ["DEVNAME", "/dev/ttyUSB0", "HALSVC_KIND", "scale", *ids, "ID_SERIAL_SHORT", "A10KZ3QX"])

        def unplug(self) -> None:
            for path in (self.tty, self.usb):
                if path:
                    self.bed.uevent(path, "remove")  # remove_device alone sends no uevent
                    self.bed.remove_device(path)
            self.tty = self.usb = None

    @pytest.fixture
    def rig() -> Any:
        st = Station(only={"serial_scale"}, config={
            "devices": {"scale0": {"match": {"HALSVC_KIND": "scale"}, "port": "/dev/halsvc/scale-0"},
                        "hws0": {"enabled": False}}})
        st.start(daemon=False)  # the simulators first; the daemon once the testbed exists
        target = os.path.realpath(st.simdir / "serial_scale" / "scale0.tty")
        bed = Bed(target)
        st.env["UMOCKDEV_DIR"] = str(bed.root)
        st.start_daemon()
        try:
            yield st, bed
        finally:
            st.stop()

    async def state(hal: AsyncClient, want: str) -> dict[str, Any]:
        ev = await hal.next_event(lambda e: e["topic"] == "scale.status" and e["device"] == "scale0"
                                  and e["data"]["state"] == want, timeout_s=30)
        return dict(ev["data"])

    def test_plug_read_unplug_mid_read_and_plug_again(rig: Any) -> None:
        st, bed = rig

        async def go() -> None:
            async with st.client() as hal:
                await hal.subscribe("scale.status")
                status = await hal.call("device.status", {"device": "scale0"})
                assert status["state"] == "no_device"  # nothing plugged in yet
                bed.plug()
                seen = [(await state(hal, "starting"))["state"], (await state(hal, "online"))["state"]]
                assert seen == ["starting", "online"]
                hw = (await hal.call("device.hardware"))["hardware"]
                tty = next(h for h in hw if h["devnode"] == "/dev/ttyUSB0")
                assert tty["kind"] == "scale" and tty["matched"] == ["scale0"] and tty["driving"] == "scale0"
                st.control("serial_scale", "step_on", device="scale0", kg=61.5, settle_s=0.2)
                assert (await hal.call("scale.read", {"device": "scale0"}))["weight_kg"] == 61.5
                # A read that cannot finish (the weight never settles), then the cable is pulled.
                st.control("serial_scale", "step_on", device="scale0", kg=70.0, settle_s=600)
                read = asyncio.ensure_future(
                    hal.call("scale.read", {"device": "scale0", "timeout_ms": 60000}))
                await state(hal, "busy")
                bed.unplug()
                with pytest.raises(RpcError) as info:
                    await read
                assert info.value.reason == "link_lost"
                await state(hal, "no_device")
                bed.plug()
                await state(hal, "online")
                st.control("serial_scale", "step_on", device="scale0", kg=58.0, settle_s=0.2)
                assert (await hal.call("scale.read", {"device": "scale0"}))["weight_kg"] == 58.0

        asyncio.run(go())
