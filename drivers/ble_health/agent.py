# The D-Bus type strings in the method annotations are dbus-fast's way to declare signatures.
# mypy: disable-error-code="valid-type,name-defined"
# ruff: noqa: F821
"""A BlueZ pairing agent with the NoInputNoOutput capability, so a headless station can bond
with devices that demand it (Just Works): it authorizes bonds and services, and refuses what
would need a keyboard or a display (a PIN, a passkey)."""

import logging

from dbus_fast import DBusError, Message, MessageType
from dbus_fast.aio import MessageBus
from dbus_fast.service import ServiceInterface, method

log = logging.getLogger("halsvc.driver.ble_health")

AGENT_PATH = "/org/halsvc/agent"
CAPABILITY = "NoInputNoOutput"


class _Rejected(DBusError):
    def __init__(self) -> None:
        super().__init__("org.bluez.Error.Rejected", "a headless station cannot enter or show a code")


class NoInputNoOutputAgent(ServiceInterface):
    def __init__(self) -> None:
        super().__init__("org.bluez.Agent1")
        self.authorized = 0

    @method()
    def Release(self) -> None:
        return None

    @method()
    def RequestAuthorization(self, device: "o") -> None:
        self.authorized += 1
        log.info("agent: bond authorized", extra={"reason": "pairing"})

    @method()
    def AuthorizeService(self, device: "o", uuid: "s") -> None:
        return None

    @method()
    def RequestConfirmation(self, device: "o", passkey: "u") -> None:
        # Numeric comparison with nobody to compare: accept, as Just Works would.
        self.authorized += 1

    @method()
    def RequestPinCode(self, device: "o") -> "s":
        raise _Rejected()

    @method()
    def RequestPasskey(self, device: "o") -> "u":
        raise _Rejected()

    @method()
    def DisplayPasskey(self, device: "o", passkey: "u", entered: "q") -> None:
        return None

    @method()
    def DisplayPinCode(self, device: "o", pincode: "s") -> None:
        return None

    @method()
    def Cancel(self) -> None:
        return None


async def register(bus: MessageBus, agent: NoInputNoOutputAgent) -> None:
    """Export the agent and make it BlueZ's default; raises DBusError when BlueZ refuses."""
    bus.export(AGENT_PATH, agent)
    for member, signature, body in (("RegisterAgent", "os", [AGENT_PATH, CAPABILITY]),
                                    ("RequestDefaultAgent", "o", [AGENT_PATH])):
        reply = await bus.call(Message(destination="org.bluez", path="/org/bluez",
                                       interface="org.bluez.AgentManager1", member=member,
                                       signature=signature, body=body))
        if reply is not None and reply.message_type == MessageType.ERROR:
            raise DBusError(reply.error_name or "org.bluez.Error.Failed", str(reply.body))
