"""ICAO 9303 eMRTD (the chip of the Vietnamese CCCD): access control (BAC, PACE), secure
messaging, and the logical data structure's parsers. Sans-IO and portable (DESIGN §6).

Crypto primitives are passed in as an object (see `protocols.emrtd.primitives.CryptoProvider`
for the methods it must have); the elliptic-curve arithmetic PACE needs beyond them is pure
integer code in `protocols.emrtd.ec`.
"""
