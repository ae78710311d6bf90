"""Device drivers: one module or package per device kind, each exporting `DRIVER` (its class).

The daemon loads `drivers.<name>` for a device whose config says `driver = "<name>"`.
"""
