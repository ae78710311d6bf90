"""The device side of every wire protocol. Never imports `drivers` or `halsvc`."""
