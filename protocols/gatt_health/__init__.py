"""Bluetooth health profiles (GATT): Blood Pressure, Pulse Oximeter, Weight Scale, Body
Composition, Record Access Control Point, Current Time, and the proprietary BerryMed oximeter
frames. Sans-IO and portable (DESIGN §6): bytes in, plain dicts out, and back.

Numbers that a device reports as special (NaN, NRes, ±INF) stay `ieee11073.Special` in the
parsed dicts; deciding that such a reading is an error is the driver's job.
"""

BASE_UUID = "-0000-1000-8000-00805f9b34fb"


def uuid16(short):
    """0x2A35 -> "00002a35-0000-1000-8000-00805f9b34fb" (the form bleak and BlueZ use)."""
    return "0000%04x%s" % (short, BASE_UUID)


# Services
BLOOD_PRESSURE_SERVICE = 0x1810
PULSE_OXIMETER_SERVICE = 0x1822
WEIGHT_SCALE_SERVICE = 0x181D
BODY_COMPOSITION_SERVICE = 0x181B
CURRENT_TIME_SERVICE = 0x1805
BATTERY_SERVICE = 0x180F
DEVICE_INFORMATION_SERVICE = 0x180A

# Characteristics
BLOOD_PRESSURE_MEASUREMENT = 0x2A35
INTERMEDIATE_CUFF_PRESSURE = 0x2A36
BLOOD_PRESSURE_FEATURE = 0x2A49
PLX_SPOT_CHECK = 0x2A5E
PLX_CONTINUOUS = 0x2A5F
PLX_FEATURES = 0x2A60
WEIGHT_MEASUREMENT = 0x2A9D
WEIGHT_SCALE_FEATURE = 0x2A9E
BODY_COMPOSITION_MEASUREMENT = 0x2A9C
BODY_COMPOSITION_FEATURE = 0x2A9B
RECORD_ACCESS_CONTROL_POINT = 0x2A52
CURRENT_TIME = 0x2A2B
BATTERY_LEVEL = 0x2A19
CLIENT_CHARACTERISTIC_CONFIGURATION = 0x2902

# BerryMed's UART-like service (not a Bluetooth SIG number)
BERRYMED_SERVICE = "49535343-fe7d-4ae5-8fa9-9fafd205e455"
BERRYMED_NOTIFY = "49535343-1e4d-4bd9-ba61-23c647249616"
BERRYMED_WRITE = "49535343-8841-43f4-a8d4-ecbe34729bb3"
