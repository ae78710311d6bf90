"""halsvc: the hardware daemon of the Digital Citizen Station."""

__version__ = "0.1.0"
DEFAULT_SYSTEM_SOCKET = "/run/halsvc/halsvc.sock"
