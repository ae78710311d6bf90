# ruff: noqa: F821, F722
# The D-Bus type strings in the method annotations are dbus-fast's way to declare signatures.
# mypy: disable-error-code="valid-type,name-defined,no-redef,misc,type-arg,attr-defined"
"""A stand-in for BlueZ's D-Bus API: `org.bluez` on a private system bus, served with dbus-fast,
exporting one adapter (hci0), an AgentManager and the simulated peripherals the way bluetoothd
does, so that unmodified bleak scans, connects, pairs, reads, writes and gets notifications.

Unlike the `bluezoo` package it can refuse connections, drop a link from the device's side (the
central sees Connected=false), reconnect the same device, answer NotAuthorized until the device
is paired (which needs a registered agent), and re-report known devices to every new scan.
Like bluetoothd, it keeps a link up when the client that made it vanishes (only that client's
notify sessions end), so a device left connected by a killed central does not advertise.

What bleak needs (../shared/reference/ble-health.md): ObjectManager (dbus-fast serves
GetManagedObjects and InterfacesAdded/Removed for exported objects), Adapter1, Device1,
GattService1/Characteristic1/Descriptor1 at `/org/bluez/hci0/dev_XX…/serviceXXXX/charYYYY/descZZZZ`,
GATT objects exported before ServicesResolved, notifications as PropertiesChanged(Value),
and devices that keep "advertising" (an RSSI change every 200 ms while anyone discovers).
"""

import asyncio
import contextlib
import logging
from collections.abc import Callable

from dbus_fast import DBusError, Message, MessageType, Variant
from dbus_fast.aio import MessageBus
from dbus_fast.service import PropertyAccess, ServiceInterface, dbus_property, method

from simulators.ble_station.gatt import Characteristic, Peripheral

log = logging.getLogger("sim.bluez")

BLUEZ = "org.bluez"
ADAPTER_PATH = "/org/bluez/hci0"
ADVERTISE_INTERVAL_S = 0.2


def bluez_error(name: str, text: str) -> DBusError:
    return DBusError(f"org.bluez.Error.{name}", text)


def device_path(address: str) -> str:
    return f"{ADAPTER_PATH}/dev_{address.upper().replace(':', '_')}"


class Adapter(ServiceInterface):
    def __init__(self, bluez: "Bluez") -> None:
        super().__init__("org.bluez.Adapter1")
        self.bluez = bluez
        self.powered = True
        self.discovering = False

    @dbus_property(access=PropertyAccess.READ)
    def Address(self) -> "s":
        return "00:1A:7D:DA:71:13"

    @dbus_property(access=PropertyAccess.READ)
    def AddressType(self) -> "s":
        return "public"

    @dbus_property(access=PropertyAccess.READ)
    def Name(self) -> "s":
        return "halsvc-sim"

    @dbus_property(access=PropertyAccess.READ)
    def Alias(self) -> "s":
        return "halsvc-sim"

    @dbus_property()
    def Powered(self) -> "b":
        return self.powered

    @Powered.setter
    def Powered(self, value: "b") -> None:
        self.powered = value

    @dbus_property(access=PropertyAccess.READ)
    def Discovering(self) -> "b":
        return self.discovering

    @dbus_property(access=PropertyAccess.READ)
    def Roles(self) -> "as":
        return ["central", "peripheral"]

    @dbus_property(access=PropertyAccess.READ)
    def UUIDs(self) -> "as":
        return []

    @method()
    def SetDiscoveryFilter(self, properties: "a{sv}") -> None:
        self.bluez.set_filter(properties)

    @method()
    def StartDiscovery(self) -> None:
        if not self.powered:
            raise bluez_error("NotReady", "Resource Not Ready")
        self.bluez.start_discovery()

    @method()
    def StopDiscovery(self) -> None:
        self.bluez.stop_discovery()

    @method()
    async def RemoveDevice(self, device: "o") -> None:
        await self.bluez.remove_device(device)

    @method()
    def GetDiscoveryFilters(self) -> "as":
        return ["UUIDs", "RSSI", "Pathloss", "Transport", "DuplicateData", "Discoverable", "Pattern"]


class AgentManager(ServiceInterface):
    def __init__(self, bluez: "Bluez") -> None:
        super().__init__("org.bluez.AgentManager1")
        self.bluez = bluez

    @method()
    def RegisterAgent(self, agent: "o", capability: "s") -> None:
        self.bluez.register_agent(agent, capability)

    @method()
    def UnregisterAgent(self, agent: "o") -> None:
        self.bluez.unregister_agent(agent)

    @method()
    def RequestDefaultAgent(self, agent: "o") -> None:
        if not any(path == agent for _, path, _ in self.bluez.agents):
            raise bluez_error("DoesNotExist", "No such agent")


class Device(ServiceInterface):
    def __init__(self, bluez: "Bluez", peripheral: Peripheral) -> None:
        super().__init__("org.bluez.Device1")
        self.bluez = bluez
        self.peripheral = peripheral
        self.path = device_path(peripheral.address)
        self.trusted = False
        self.connected = False
        self.resolved = False
        self.rssi = -55
        self.gatt: list[tuple[str, ServiceInterface]] = []

    @dbus_property(access=PropertyAccess.READ)
    def Address(self) -> "s":
        return self.peripheral.address

    @dbus_property(access=PropertyAccess.READ)
    def AddressType(self) -> "s":
        return "public"

    @dbus_property(access=PropertyAccess.READ)
    def Name(self) -> "s":
        return self.peripheral.name

    @dbus_property(access=PropertyAccess.READ)
    def Alias(self) -> "s":
        return self.peripheral.name

    @dbus_property(access=PropertyAccess.READ)
    def Adapter(self) -> "o":
        return ADAPTER_PATH

    @dbus_property(access=PropertyAccess.READ)
    def Connected(self) -> "b":
        return self.connected

    @dbus_property(access=PropertyAccess.READ)
    def Paired(self) -> "b":
        return self.peripheral.paired

    @dbus_property(access=PropertyAccess.READ)
    def Bonded(self) -> "b":
        return self.peripheral.paired

    @dbus_property()
    def Trusted(self) -> "b":
        return self.trusted

    @Trusted.setter
    def Trusted(self, value: "b") -> None:
        self.trusted = value

    @dbus_property(access=PropertyAccess.READ)
    def Blocked(self) -> "b":
        return False

    @dbus_property(access=PropertyAccess.READ)
    def LegacyPairing(self) -> "b":
        return False

    @dbus_property(access=PropertyAccess.READ)
    def ServicesResolved(self) -> "b":
        return self.resolved

    @dbus_property(access=PropertyAccess.READ)
    def UUIDs(self) -> "as":
        return list(self.peripheral.advertised)

    @dbus_property(access=PropertyAccess.READ)
    def RSSI(self) -> "n":
        return self.rssi

    @dbus_property(access=PropertyAccess.READ)
    def ServiceData(self) -> "a{sv}":
        return {}

    @dbus_property(access=PropertyAccess.READ)
    def ManufacturerData(self) -> "a{qv}":
        return {}

    @method()
    async def Connect(self) -> None:
        await self.bluez.connect(self)

    @method()
    async def Disconnect(self) -> None:
        self.bluez.disconnect(self)

    @method()
    async def Pair(self) -> None:
        await self.bluez.pair(self)

    @method()
    def CancelPairing(self) -> None:
        return None


class GattService(ServiceInterface):
    def __init__(self, uuid: str, device: str) -> None:
        super().__init__("org.bluez.GattService1")
        self.uuid, self.device = uuid, device

    @dbus_property(access=PropertyAccess.READ)
    def UUID(self) -> "s":
        return self.uuid

    @dbus_property(access=PropertyAccess.READ)
    def Device(self) -> "o":
        return self.device

    @dbus_property(access=PropertyAccess.READ)
    def Primary(self) -> "b":
        return True

    @dbus_property(access=PropertyAccess.READ)
    def Includes(self) -> "ao":
        return []


class GattCharacteristic(ServiceInterface):
    def __init__(self, device: Device, char: Characteristic, service: str) -> None:
        super().__init__("org.bluez.GattCharacteristic1")
        self.device, self.char, self.service = device, char, service
        self.subscribers: set[str] = set()  # bus names with a notify session, as bluetoothd keeps them

    def _check(self) -> None:
        p = self.device.peripheral
        if not self.device.connected:
            raise bluez_error("Failed", "Not connected")
        if self.char.secure and p.require_pairing and not p.paired:
            raise bluez_error("NotAuthorized", "Operation Not Authorized")

    @dbus_property(access=PropertyAccess.READ)
    def UUID(self) -> "s":
        return self.char.uuid

    @dbus_property(access=PropertyAccess.READ)
    def Service(self) -> "o":
        return self.service

    @dbus_property(access=PropertyAccess.READ)
    def Value(self) -> "ay":
        return self.char.value

    @dbus_property(access=PropertyAccess.READ)
    def Notifying(self) -> "b":
        return self.char.notifying

    @dbus_property(access=PropertyAccess.READ)
    def Flags(self) -> "as":
        return list(self.char.flags)

    @dbus_property(access=PropertyAccess.READ)
    def MTU(self) -> "q":
        return 247

    @method()
    def ReadValue(self, options: "a{sv}") -> "ay":
        self._check()
        if "read" not in self.char.flags:
            raise bluez_error("NotPermitted", "Read not permitted")
        if self.char.on_read is not None:
            self.char.value = self.char.on_read()
        return self.char.value

    @method()
    def WriteValue(self, value: "ay", options: "a{sv}") -> None:
        self._check()
        if not {"write", "write-without-response"} & set(self.char.flags):
            raise bluez_error("NotPermitted", "Write not permitted")
        if self.char.on_write is not None:
            try:
                self.char.on_write(bytes(value))
            except Exception as exc:  # a value the device cannot take: an ATT error, as BlueZ says it
                raise bluez_error("Failed", f"Application error: {exc}") from None

    @method()
    def StartNotify(self) -> None:
        self._check()
        if not self.char.notifiable:
            raise bluez_error("NotSupported", "Operation is not supported")
        self.subscribers.add(self.device.bluez._sender or "")
        if self.char.notifying:
            return
        self.char.notifying = True
        self.emit_properties_changed({"Notifying": True})
        if self.char.on_subscribe is not None:
            self.char.on_subscribe(True)

    @method()
    def StopNotify(self) -> None:
        self.subscribers.discard(self.device.bluez._sender or "")
        self.stop_if_unwatched()

    def client_gone(self, name: str) -> None:
        if name in self.subscribers:
            self.subscribers.discard(name)
            self.stop_if_unwatched()

    def stop_if_unwatched(self) -> None:
        if self.subscribers or not self.char.notifying:
            return
        self.char.notifying = False
        self.emit_properties_changed({"Notifying": False})
        if self.char.on_subscribe is not None:
            self.char.on_subscribe(False)

    def notify(self, value: bytes) -> None:
        self.char.value = value
        self.emit_properties_changed({"Value": value})


class GattDescriptor(ServiceInterface):
    def __init__(self, uuid: str, characteristic: str) -> None:
        super().__init__("org.bluez.GattDescriptor1")
        self.uuid, self.characteristic = uuid, characteristic
        self.value = b"\x00\x00"

    @dbus_property(access=PropertyAccess.READ)
    def UUID(self) -> "s":
        return self.uuid

    @dbus_property(access=PropertyAccess.READ)
    def Characteristic(self) -> "o":
        return self.characteristic

    @dbus_property(access=PropertyAccess.READ)
    def Value(self) -> "ay":
        return self.value

    @method()
    def ReadValue(self, options: "a{sv}") -> "ay":
        return self.value

    @method()
    def WriteValue(self, value: "ay", options: "a{sv}") -> None:
        self.value = bytes(value)


class _Link:
    """A connected peripheral's way back to the stand-in."""

    def __init__(self, bluez: "Bluez", device: Device, chars: dict[int, GattCharacteristic]) -> None:
        self.bluez, self.device, self.chars = bluez, device, chars

    def notify(self, char: Characteristic, value: bytes) -> None:
        gatt = self.chars.get(id(char))
        if gatt is not None and self.device.connected:
            gatt.notify(value)

    def drop(self) -> None:
        self.bluez.disconnect(self.device)


class Bluez:
    """The stand-in. `await Bluez(address, peripherals).start()`; `await .stop()`."""

    def __init__(self, bus_address: str, peripherals: list[Peripheral]) -> None:
        self.bus_address = bus_address
        self.peripherals = peripherals
        self.bus: MessageBus | None = None
        self.adapter = Adapter(self)
        self.agent_manager = AgentManager(self)
        self.devices: dict[str, Device] = {}  # address -> exported Device1
        self.agents: list[tuple[str, str, str]] = []  # (bus name, path, capability)
        self.discoverers: set[str] = set()
        self.uuid_filter: set[str] = set()
        self._sender: str | None = None
        self._ticker: asyncio.Task[None] | None = None
        self.on_connected: Callable[[Peripheral], None] | None = None

    async def start(self) -> "Bluez":
        self.bus = await MessageBus(bus_address=self.bus_address).connect()
        self.bus.add_message_handler(self._peek)
        await self.bus.call(Message(
            destination="org.freedesktop.DBus", path="/org/freedesktop/DBus",
            interface="org.freedesktop.DBus",
            member="AddMatch", signature="s",
            body=["type='signal',sender='org.freedesktop.DBus',member='NameOwnerChanged'"]))
        self.bus.export("/org/bluez", self.agent_manager)
        self.bus.export(ADAPTER_PATH, self.adapter)
        for p in self.peripherals:  # paired devices are known to BlueZ from the start
            if p.paired:
                self._export_device(p)
        await self.bus.request_name(BLUEZ)
        return self

    async def stop(self) -> None:
        if self._ticker is not None:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker
        for p in self.peripherals:
            await p.close()
        if self.bus is not None:
            # On Ctrl-C the whole process group stops: the bus may be gone already.
            if self.bus.connected:
                self.bus.disconnect()
                with contextlib.suppress(Exception):
                    await self.bus.wait_for_disconnect()
            self.bus = None

    def _peek(self, msg: Message) -> None:
        # Service methods do not see the caller; agents and discovery sessions belong to one.
        if msg.message_type == MessageType.METHOD_CALL:
            self._sender = msg.sender
        elif msg.message_type == MessageType.SIGNAL and msg.member == "NameOwnerChanged":
            name, _old, new = msg.body
            if not new:
                self.agents = [a for a in self.agents if a[0] != name]
                # Like bluetoothd: a vanished client's notify sessions end, but its links stay
                # up (Connected stays true, and a connected device does not advertise).
                for dev in list(self.devices.values()):
                    for _path, iface in list(dev.gatt):
                        if isinstance(iface, GattCharacteristic):
                            iface.client_gone(name)
                if name in self.discoverers:
                    self.discoverers.discard(name)
                    self._discovery_changed()
        return None

    # --- discovery -----------------------------------------------------------------------
    def set_filter(self, properties: dict[str, Variant]) -> None:
        uuids = properties.get("UUIDs")
        self.uuid_filter = {u.lower() for u in uuids.value} if uuids is not None else set()

    def start_discovery(self) -> None:
        if self._sender in self.discoverers:
            raise bluez_error("InProgress", "Operation already in progress")
        self.discoverers.add(self._sender or "")
        self._discovery_changed()

    def stop_discovery(self) -> None:
        if self._sender not in self.discoverers:
            raise bluez_error("NotReady", "Resource Not Ready")  # what bleak expects when not discovering
        self.discoverers.discard(self._sender or "")
        self._discovery_changed()

    def _discovery_changed(self) -> None:
        discovering = bool(self.discoverers)
        if discovering != self.adapter.discovering:
            self.adapter.discovering = discovering
            self.adapter.emit_properties_changed({"Discovering": discovering})
        if discovering and self._ticker is None:
            self._ticker = asyncio.ensure_future(self._advertise())
        elif not discovering and self._ticker is not None:
            self._ticker.cancel()
            self._ticker = None

    def _visible(self, p: Peripheral) -> bool:
        if not p.advertising or p.connected:
            return False
        return not self.uuid_filter or bool(self.uuid_filter & {u.lower() for u in p.advertised})

    async def _advertise(self) -> None:
        # bleak reports a device when it appears or its advertising properties change, so each
        # advertising peripheral "advertises" again every interval while anyone discovers.
        while True:
            for p in self.peripherals:
                if not self._visible(p):
                    continue
                dev = self.devices.get(p.address)
                if dev is None:
                    self._export_device(p)
                else:
                    dev.rssi = -55 if dev.rssi != -55 else -56
                    dev.emit_properties_changed({"RSSI": dev.rssi})
            await asyncio.sleep(ADVERTISE_INTERVAL_S)

    def _export_device(self, p: Peripheral) -> Device:
        assert self.bus is not None
        dev = Device(self, p)
        self.devices[p.address] = dev
        self.bus.export(dev.path, dev)
        return dev

    async def remove_device(self, path: str) -> None:
        dev = next((d for d in self.devices.values() if d.path == path), None)
        if dev is None:
            raise bluez_error("DoesNotExist", "Does Not Exist")
        self.disconnect(dev)
        dev.peripheral.paired = False
        del self.devices[dev.peripheral.address]
        assert self.bus is not None
        self.bus.unexport(dev.path)

    # --- connections ---------------------------------------------------------------------
    async def connect(self, dev: Device) -> None:
        if dev.connected:
            return
        refusal = dev.peripheral.connecting()
        if refusal is not None:
            raise bluez_error("Failed", refusal)
        assert self.bus is not None
        chars: dict[int, GattCharacteristic] = {}
        handle = 0x000A
        for svc in dev.peripheral.services:
            spath = f"{dev.path}/service{handle:04x}"
            handle += 1
            gsvc = GattService(svc.uuid, dev.path)
            self.bus.export(spath, gsvc)
            dev.gatt.append((spath, gsvc))
            for char in svc.characteristics:
                cpath = f"{spath}/char{handle:04x}"
                handle += 2
                gchar = GattCharacteristic(dev, char, spath)
                self.bus.export(cpath, gchar)
                dev.gatt.append((cpath, gchar))
                chars[id(char)] = gchar
                if char.notifiable:
                    dpath = f"{cpath}/desc{handle:04x}"
                    handle += 1
                    gdesc = GattDescriptor("00002902-0000-1000-8000-00805f9b34fb", cpath)
                    self.bus.export(dpath, gdesc)
                    dev.gatt.append((dpath, gdesc))
        dev.connected = True
        dev.emit_properties_changed({"Connected": True})
        dev.resolved = True
        dev.emit_properties_changed({"ServicesResolved": True})
        dev.peripheral.connected_by(_Link(self, dev, chars))

    def disconnect(self, dev: Device) -> None:
        if not dev.connected:
            return
        assert self.bus is not None
        dev.resolved = False
        dev.emit_properties_changed({"ServicesResolved": False})
        dev.connected = False
        dev.peripheral.disconnected()
        for path, _iface in reversed(dev.gatt):
            self.bus.unexport(path)
        dev.gatt.clear()
        dev.emit_properties_changed({"Connected": False})

    # --- pairing -------------------------------------------------------------------------
    def register_agent(self, path: str, capability: str) -> None:
        sender = self._sender or ""
        if any(a[0] == sender for a in self.agents):
            raise bluez_error("AlreadyExists", "Already Exists")
        if capability not in ("", "DisplayOnly", "DisplayYesNo", "KeyboardOnly", "NoInputNoOutput",
                              "KeyboardDisplay"):
            raise bluez_error("InvalidArguments", "Invalid Arguments in method call")
        self.agents.append((sender, path, capability or "KeyboardDisplay"))

    def unregister_agent(self, path: str) -> None:
        before = len(self.agents)
        self.agents = [a for a in self.agents if not (a[0] == self._sender and a[1] == path)]
        if len(self.agents) == before:
            raise bluez_error("DoesNotExist", "Does Not Exist")

    async def pair(self, dev: Device) -> None:
        p = dev.peripheral
        if p.paired:
            raise bluez_error("AlreadyExists", "Already Exists")
        await self.connect(dev)
        if not self.agents:
            # The device insists on bonding; with no agent bluetoothd cannot complete it.
            raise bluez_error("AuthenticationFailed", "Authentication Failed")
        name, path, _capability = self.agents[-1]
        assert self.bus is not None
        # Just Works: bluetoothd asks the agent to authorize the bond.
        reply = await self.bus.call(Message(destination=name, path=path, interface="org.bluez.Agent1",
                                            member="RequestAuthorization", signature="o", body=[dev.path]))
        if reply is None or reply.message_type == MessageType.ERROR:
            raise bluez_error("AuthenticationRejected", "Authentication Rejected")
        p.paired = True
        p.stats["pairings"] += 1
        dev.emit_properties_changed({"Paired": True, "Bonded": True})
