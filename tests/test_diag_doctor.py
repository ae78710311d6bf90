"""`halctl doctor`: each check seen passing on the simulated station and failing on a setup that
is broken for real (a dead socket path, a socket the user may not open, a pcscd socket that is
not there, a system bus without BlueZ or with its adapter off, missing or inaccessible serial
ports, missing or changed udev rules, a bad config, a full file system), plus the clock check
against the kernel's own adjtimex answer."""

from __future__ import annotations

import asyncio
import json
import os
import pathlib
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from conftest import run
from harness import ROOT, Station, online

from halsvc import doctor
from halsvc.doctor import FAIL, PASS, WARN

HALCTL = [sys.executable, "-m", "halsvc.cli"]
NOBODY = 65534


def halctl(*args: str, env: dict[str, str] | None = None, unprivileged: bool = False
           ) -> subprocess.CompletedProcess[str]:
    cmd = [*HALCTL, *args]
    if unprivileged:  # root without any capability: file modes apply to it as to anyone
        cmd = ["setpriv", "--inh-caps=-all", "--bounding-set=-all", "--", *cmd]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=180, cwd=ROOT,
                          env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})})


@pytest.fixture(scope="module")
def station() -> Iterator[Station]:
    with online(only={"cccd_card", "serial_scale", "gpio_panel", "ble_station"}) as st:
        yield st


# --- the whole doctor through halctl ------------------------------------------------------------
def test_halctl_doctor_on_the_simulated_station(station: Station) -> None:
    out = halctl("doctor", "--json", "--socket", str(station.socket), env=station.env)
    doc = json.loads(out.stdout)
    checks = {c["name"]: c for c in doc["checks"]}
    assert set(checks) == {"daemon", "socket", "devices", "config", "pcscd", "bluetooth", "serial", "udev",
                           "clock", "disk"}
    for name in ("daemon", "socket", "devices", "config", "pcscd", "bluetooth", "serial", "disk"):
        assert checks[name]["status"] == PASS, checks[name]
    assert "Virtual PCD" in checks["pcscd"]["summary"]
    assert "scale0" in checks["serial"]["summary"]
    assert checks["bluetooth"]["status"] == PASS and "/org/bluez/hci0" in checks["bluetooth"]["summary"]
    assert doc["result"] == doctor.worst(doctor.Check(c["name"], c["status"], "") for c in doc["checks"])
    assert out.returncode == {"pass": 0, "warn": 4, "fail": 1}[doc["result"]]
    text = halctl("doctor", "--socket", str(station.socket), env=station.env)
    assert "PASS  daemon" in text.stdout and "passed," in text.stdout
    for c in doc["checks"]:
        if c["status"] != PASS:
            assert c["fix"] and c["fix"] in text.stdout


def test_halctl_doctor_without_a_daemon_still_checks_the_rest(tmp_path: pathlib.Path) -> None:
    out = halctl("doctor", "--json", "--socket", str(tmp_path / "none.sock"),
                 "--config", str(tmp_path / "missing.toml"))
    assert out.returncode == 1
    checks = {c["name"]: c for c in json.loads(out.stdout)["checks"]}
    assert checks["daemon"]["status"] == checks["socket"]["status"] == checks["config"]["status"] == FAIL
    assert "systemctl" in checks["daemon"]["fix"] and "no socket" in checks["socket"]["summary"]


def test_socket_the_user_may_not_open(tmp_path: pathlib.Path) -> None:
    """The daemon's socket 0600 and owned by another uid, and a technician who is neither: a real
    halctl without privileges (setpriv drops root's capabilities) cannot connect, and says why."""
    st = Station(only={"gpio_panel"}, config={"daemon": {"socket_mode": "0600"}})
    try:
        st.start()
        os.chown(st.socket, NOBODY, NOBODY)
        out = halctl("doctor", "--json", "--socket", str(st.socket), "--config", str(st.config_path),
                     unprivileged=True)
        checks = {c["name"]: c for c in json.loads(out.stdout)["checks"]}
        assert checks["socket"]["status"] == FAIL, checks["socket"]
        assert "0600" in checks["socket"]["summary"] and "usermod" in checks["socket"]["fix"]
        assert checks["daemon"]["status"] == FAIL and out.returncode == 1
        assert doctor.check_socket(str(st.socket)).status == PASS  # root may
        assert doctor.check_socket(str(st.socket), 1000, [1000]).status == FAIL
        os.chmod(st.socket, 0o666)
        world = doctor.check_socket(str(st.socket), 1000, [1000])
        assert world.status == WARN and "every local user" in world.summary
    finally:
        st.stop()
    dead = doctor.check_socket(str(st.socket)) if st.socket.exists() else None
    assert dead is None or dead.status == FAIL


def test_a_socket_path_that_is_not_a_socket(tmp_path: pathlib.Path) -> None:
    (tmp_path / "file").write_text("")
    assert doctor.check_socket(str(tmp_path / "file"), 0, []).status == FAIL


# --- devices, config ---------------------------------------------------------------------------
def test_devices_and_serial_ports_fail_for_a_scale_that_is_not_there(tmp_path: pathlib.Path) -> None:
    st = Station(only={"gpio_panel"}, config={"devices": {"scale9": {
        "driver": "scale", "port": "/dev/ttyHALSVCNOPE", "protocol": "and"}}})
    try:
        st.start()
        view = doctor.ask_daemon(str(st.socket))
        devices = doctor.check_devices(view)
        assert devices.status == FAIL and "scale9" in devices.summary
        assert view.info is not None
        serial = doctor.check_serial(doctor.device_nodes(view.info["devices"]), 0, [])
        assert serial.status == FAIL and "/dev/ttyHALSVCNOPE does not exist" in serial.summary
    finally:
        st.stop()


def test_serial_port_the_daemon_may_not_open(station: Station, tmp_path: pathlib.Path) -> None:
    view = doctor.ask_daemon(str(station.socket))
    assert view.info is not None
    nodes = doctor.device_nodes(view.info["devices"])
    assert doctor.check_serial(nodes, view.info["uid"], view.info["groups"]).status == PASS
    pty = os.path.realpath(nodes[0][1])
    st = os.stat(pty)
    assert st.st_mode & 0o006 != 0o006 or st.st_uid != NOBODY
    denied = doctor.check_serial(nodes[:1], NOBODY, [NOBODY])  # as if the daemon ran as nobody
    assert denied.status == FAIL and "may not open" in denied.summary and "udev" in denied.fix
    (tmp_path / "notatty").write_text("")
    odd = doctor.check_serial([("scale0", str(tmp_path / "notatty"), False)], 0, [])
    assert odd.status == FAIL and "not a character device" in odd.summary
    unplugged = doctor.check_serial([("scale0", "/dev/halsvc/scale-7", True)], 0, [])
    assert unplugged.status == WARN  # hot-plugged: may simply be unplugged right now


def test_config_check_names_the_bad_key(station: Station, tmp_path: pathlib.Path) -> None:
    assert doctor.check_config(str(station.config_path)).status == PASS
    bad = tmp_path / "bad.toml"
    bad.write_text(station.config_path.read_text() + '\n[usage]\nbeneficiaries = "yes"\n')
    check = doctor.check_config(str(bad))
    assert check.status == FAIL and "usage.beneficiaries" in check.summary and f"{bad}:" in check.summary
    assert "--check-config" in check.fix


# --- PC/SC ---------------------------------------------------------------------------------------
def test_pcscd_seen_with_its_reader_and_missing(station: Station, tmp_path: pathlib.Path) -> None:
    good = doctor.check_pcscd(station.env, ["Virtual PCD"])
    assert good.status == PASS and any("Virtual PCD" in r for r in good.details["readers"])
    nowhere = doctor.check_pcscd({"PCSCLITE_CSOCK_NAME": str(tmp_path / "pcscd.comm")})
    assert nowhere.status == FAIL and "does not answer" in nowhere.summary
    assert "PCSCLITE_CSOCK_NAME" in nowhere.fix
    assert doctor.check_pcscd({"PCSCLITE_CSOCK_NAME": str(tmp_path / "x")}, needed=False).status == WARN
    other = doctor.check_pcscd(station.env, ["ACS ACR1252"])
    assert other.status == FAIL and "ACS ACR1252" in other.summary


# --- Bluetooth -----------------------------------------------------------------------------------
class BluezStandIn:
    """A private D-Bus (a real dbus-daemon) and a process-local org.bluez that serves the one
    object the doctor reads: an org.bluez.Adapter1 under ObjectManager."""

    def __init__(self, workdir: pathlib.Path, powered: bool | None) -> None:
        self.address = f"unix:path={workdir / 'system_bus'}"
        self.daemon = subprocess.Popen(["dbus-daemon", "--session", "--nofork", "--nopidfile",
                                        f"--address={self.address}", "--print-address=1"],
                                       stdout=subprocess.PIPE, text=True)
        assert self.daemon.stdout is not None
        self.daemon.stdout.readline()  # printed once it listens
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        if powered is not None:
            asyncio.run_coroutine_threadsafe(self._serve(powered), self.loop).result(30)

    async def _serve(self, powered: bool) -> None:
        from dbus_fast import BusType, PropertyAccess
        from dbus_fast.aio import MessageBus
        from dbus_fast.service import ServiceInterface, dbus_property

        class Adapter(ServiceInterface):
            def __init__(self) -> None:
                super().__init__("org.bluez.Adapter1")

            @dbus_property(access=PropertyAccess.READ)
            def Address(self) -> s:  # type: ignore[name-defined]  # noqa: F821
                return "00:1A:7D:DA:71:13"

            @dbus_property(access=PropertyAccess.READ)
            def Powered(self) -> b:  # type: ignore[name-defined]  # noqa: F821
                return powered

        # dbus_fast answers ObjectManager.GetManagedObjects itself from what is exported
        self.bus = await MessageBus(bus_address=self.address, bus_type=BusType.SYSTEM).connect()
        self.bus.export("/org/bluez/hci0", Adapter())
        await self.bus.request_name("org.bluez")

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.daemon.terminate()
        self.daemon.wait(30)


def test_bluetooth_adapter_of_the_simulated_station_switched_off(station: Station) -> None:
    """The station's own BlueZ stand-in (simulators/ble_station), its adapter powered off over
    D-Bus as `bluetoothctl power off` would."""
    from dbus_fast import BusType, Message, Variant
    from dbus_fast.aio import MessageBus

    address = station.env["DBUS_SYSTEM_BUS_ADDRESS"]

    async def power(on: bool) -> None:
        bus = await MessageBus(bus_address=address, bus_type=BusType.SYSTEM).connect()
        try:
            await bus.call(Message(destination="org.bluez", path="/org/bluez/hci0",
                                   interface="org.freedesktop.DBus.Properties", member="Set", signature="ssv",
                                   body=["org.bluez.Adapter1", "Powered", Variant("b", on)]))
        finally:
            bus.disconnect()

    run(power(False))
    try:
        off = doctor.check_bluetooth(station.env, needed=True)
        assert off.status == FAIL and "powered off" in off.summary
    finally:
        run(power(True))
    assert doctor.check_bluetooth(station.env, needed=True).status == PASS


@pytest.mark.parametrize("powered", [True, False, None])
def test_bluetooth_adapter_on_the_system_bus(tmp_path: pathlib.Path, powered: bool | None) -> None:
    if shutil.which("dbus-daemon") is None:
        pytest.skip("dbus-daemon not installed")
    bluez = BluezStandIn(tmp_path, powered)
    try:
        check = doctor.check_bluetooth({"DBUS_SYSTEM_BUS_ADDRESS": bluez.address}, needed=True)
    finally:
        bluez.stop()
    if powered:
        assert check.status == PASS and "/org/bluez/hci0" in check.summary
    elif powered is False:
        assert check.status == FAIL and "powered off" in check.summary and "power on" in check.fix
    else:
        assert check.status == FAIL and "BlueZ is not on the system bus" in check.summary


def test_bluetooth_without_a_bus(tmp_path: pathlib.Path) -> None:
    env = {"DBUS_SYSTEM_BUS_ADDRESS": f"unix:path={tmp_path / 'nobus'}"}
    assert doctor.check_bluetooth(env, needed=True).status == FAIL
    assert doctor.check_bluetooth(env, needed=False).status == WARN  # no BLE device configured yet


# --- udev ----------------------------------------------------------------------------------------
def test_udev_rules_installed_changed_or_missing(tmp_path: pathlib.Path) -> None:
    rules = ROOT / "udev" / doctor.RULES_NAME
    etc = tmp_path / "etc" / "udev" / "rules.d"
    etc.mkdir(parents=True)
    assert doctor.check_udev_rules([str(etc)], [rules]).status == FAIL
    shutil.copy(rules, etc / doctor.RULES_NAME)  # what tools/install.sh does
    assert doctor.check_udev_rules([str(etc)], [rules], group="root").status == PASS
    no_group = doctor.check_udev_rules([str(etc)], [rules], group="halsvc-no-such-group")
    assert no_group.status == WARN and "does not exist" in no_group.summary
    (etc / doctor.RULES_NAME).write_text(rules.read_text().replace('MODE="0660"', 'MODE="0666"'))
    changed = doctor.check_udev_rules([str(etc)], [rules], group="root")
    assert changed.status == WARN and "differs" in changed.summary and "udevadm" in changed.fix


# --- clock, disk ---------------------------------------------------------------------------------
def test_clock_from_the_kernel() -> None:
    state, status, _maxerror = doctor.kernel_clock()
    real = doctor.check_clock()
    unsynced = state == doctor.TIME_ERROR or bool(status & doctor.STA_UNSYNC)
    assert real.status == (FAIL if unsynced else PASS)
    assert doctor.check_clock(lambda: (0, 0x2001, 20_000)).status == PASS  # TIME_OK, STA_PLL
    failed = doctor.check_clock(lambda: (doctor.TIME_ERROR, doctor.STA_UNSYNC, 16_000_000))
    assert failed.status == FAIL and "timedatectl" in failed.fix


def test_free_space_on_a_small_file_system(tmp_path: pathlib.Path) -> None:
    assert doctor.check_free_space(str(tmp_path), warn_bytes=1, fail_bytes=1).status == PASS
    assert doctor.check_free_space(str(tmp_path / "missing")).status == FAIL
    small = tmp_path / "small"
    small.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(small)],
                             capture_output=True).returncode == 0
    try:
        if mounted:  # a real, nearly empty 1 MiB file system
            check = doctor.check_free_space(str(small))
        else:  # no mount privilege here: the same numbers through statvfs
            real = os.statvfs(str(tmp_path))

            def tiny(path: str) -> Any:
                return os.statvfs_result((*real[:4], 256, *real[5:]))  # f_bavail: 256 blocks
            check = doctor.check_free_space(str(small), statvfs=tiny)
        assert check.status == FAIL and "only" in check.summary and "free space" in check.fix
        low = doctor.check_free_space(str(small), warn_bytes=1 << 40, fail_bytes=1)
        assert low.status == WARN
    finally:
        if mounted:
            subprocess.run(["umount", str(small)], check=True)
