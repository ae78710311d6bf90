"""Hot-plug of a USB printer class printer through the daemon: an Epson-id USB device with its
usbmisc `lp0` node appears in a umockdev testbed, the daemon's udev monitor hands the node to
the printer driver (as its `path`), and it prints; unplugged mid-job, the job fails with
link_lost and the device goes to no_device; plugged back, it prints again.

The testbed's /dev/usb/lp0 is a link to the simulated printer's pty: the driver opens the node
udev announced as a character device and reads the status replies back on the same fd, as on a
bidirectional usblp. Like tests/test_hotplug_daemon.py, outside `umockdev-wrapper` this module
re-runs itself under it.
"""

from __future__ import annotations

import asyncio
import os
import pathlib
from typing import Any

import pytest
from umockdev_rerun import UNDER_UMOCKDEV, rerun_test

pytestmark = pytest.mark.umockdev
PART, DEV = "escpos_printer", "printer0"

if not UNDER_UMOCKDEV:
    test_printer_hotplug_under_umockdev_wrapper = rerun_test(__file__)

else:
    import gi

    gi.require_version("UMockdev", "1.0")
    from gi.repository import UMockdev
    from harness import Station
    from test_printer_daemon import RECEIPT_DATA, SLIP_DATA

    from halsvc.client import AsyncClient

    IDS = ["ID_VENDOR_ID", "04b8", "ID_MODEL_ID", "0e15"]  # Epson TM-T20II

    class Bed:
        def __init__(self, target: str) -> None:
            self.bed = UMockdev.Testbed.new()
            self.root = pathlib.Path(self.bed.get_root_dir())
            self.target = target
            self.usb: str | None = None
            self.lp: str | None = None

        def plug(self) -> None:
            self.usb = self.bed.add_device("usb", "1-2", None, ["idVendor", "04b8", "idProduct", "0e15"],
                                           [*IDS, "DEVTYPE", "usb_device"])
            node = self.root / "dev" / "usb" / "lp0"
            node.parent.mkdir(parents=True, exist_ok=True)
            if node.is_symlink() or node.exists():
                node.unlink()
            node.symlink_to(self.target)
            self.lp = self.bed.add_device("usbmisc", "lp0", self.usb, ["dev", "180:0"],
                                          ["DEVNAME", "/dev/usb/lp0", *IDS])

        def unplug(self) -> None:
            for path in (self.lp, self.usb):
                if path:
                    self.bed.uevent(path, "remove")
                    self.bed.remove_device(path)
            self.lp = self.usb = None

    @pytest.fixture
    def rig() -> Any:
        st = Station(only={PART}, options={PART: {"transport": "usb"}}, config={
            "devices": {DEV: {"match": {"ID_VENDOR_ID": "04b8"}, "path": "/dev/usb/nothing-yet",
                              "finish_timeout_s": 2.0, "status_timeout_s": 0.5}}})
        st.start(daemon=False)
        target = os.path.realpath(st.simdir / PART / "dev" / "usb" / "lp0")
        bed = Bed(target)
        st.env["UMOCKDEV_DIR"] = str(bed.root)
        st.start_daemon()
        try:
            yield st, bed
        finally:
            print(st.log()[-3000:])  # shown by pytest only when the test fails
            st.stop()

    async def state(hal: AsyncClient, want: str) -> dict[str, Any]:
        ev = await hal.next_event(lambda e: e["topic"] == "printer.status" and e["device"] == DEV
                                  and e["data"]["state"] == want, timeout_s=60)
        return dict(ev["data"])

    def test_plug_print_unplug_mid_job_and_plug_again(rig: Any) -> None:
        st, bed = rig

        async def go() -> None:
            async with st.client() as hal:
                await hal.subscribe("printer.status")
                assert (await hal.call("device.status", {"device": DEV}))["state"] == "no_device"
                bed.plug()
                await state(hal, "online")
                hw = (await hal.call("device.hardware"))["hardware"]
                lp = next(h for h in hw if h["devnode"] == "/dev/usb/lp0")
                assert lp["kind"] == "printer" and lp["driving"] == DEV
                r = await hal.call("printer.print", {"job_id": "hp-1", "template": "payment_receipt",
                                                     "data": RECEIPT_DATA})
                assert (r["status"], r["reason"]) == ("printed", None)
                # Pulled while the receipt crosses the wire (≈3 s at the pty's 115200 baud).
                sending = asyncio.Event()
                job = asyncio.ensure_future(hal.call(
                    "printer.print", {"job_id": "hp-2", "template": "payment_receipt", "data": RECEIPT_DATA},
                    on_progress=lambda p: sending.set() if p["data"].get("phase") == "sending" else None))
                await asyncio.wait_for(sending.wait(), 60)
                bed.unplug()
                r = await asyncio.wait_for(job, 60)
                assert (r["status"], r["reason"]) == ("failed", "link_lost")
                await state(hal, "no_device")
                # The printer stayed on: what was on the wire is lost, and its parser is still
                # inside the raster band the pull cut off (the driver finishes that band and
                # clears the buffer before it asks for status again).
                await asyncio.to_thread(st.control, PART, "link_drop")
                await asyncio.to_thread(st.control, PART, "link_restore", reset=False)
                bed.plug()
                await state(hal, "online")
                r = await hal.call("printer.print", {"job_id": "hp-3", "template": "health_slip",
                                                     "data": SLIP_DATA})
                assert (r["status"], r["reason"]) == ("printed", None)

        asyncio.run(go())
        outcomes = [(j["status"], bool(j["symbols"])) for j in st.control(PART, "jobs")["jobs"]]
        # The receipt; the pulled one never complete (ended by the buffer clear, or not begun
        # on paper yet); the slip alone, nothing of the pulled receipt on it.
        assert outcomes[0] == ("complete", True) and outcomes[-1] == ("complete", False)
        assert all(status == "aborted" for status, _ in outcomes[1:-1]) and len(outcomes) <= 3
