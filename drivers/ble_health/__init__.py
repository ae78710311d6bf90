"""BLE health devices (cuffs, oximeters, scales) through bleak on BlueZ: driver `ble_health`."""

from drivers.ble_health.driver import BleHealthDriver

DRIVER = BleHealthDriver
