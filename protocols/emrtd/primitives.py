"""Symmetric building blocks of 9303-11 on top of an injected block-cipher provider: ISO 9797-1
padding, the retail MAC (MAC algorithm 3), AES-CMAC, the key derivation function, DES parity.

The provider is any object with these methods (bytes in, bytes out); `drivers/idcard/crypto.py`
builds one from `cryptography`, the MicroPython tests use a pure-Python one:

    random(n)                          n random bytes
    digest(name, data)                 name in "sha1", "sha224", "sha256", "sha384", "sha512"
    des_cbc_encrypt(key, iv, data)     key of 8 bytes (single DES) or 16 (two-key 3DES)
    des_cbc_decrypt(key, iv, data)
    aes_cbc_encrypt(key, iv, data)     key of 16, 24 or 32 bytes
    aes_cbc_decrypt(key, iv, data)
"""
from protocols.errors import ProtocolError


class CryptoProvider:
    """The interface, for documentation and type checking; subclasses implement every method."""

    def random(self, n):
        raise NotImplementedError

    def digest(self, name, data):
        raise NotImplementedError

    def des_cbc_encrypt(self, key, iv, data):
        raise NotImplementedError

    def des_cbc_decrypt(self, key, iv, data):
        raise NotImplementedError

    def aes_cbc_encrypt(self, key, iv, data):
        raise NotImplementedError

    def aes_cbc_decrypt(self, key, iv, data):
        raise NotImplementedError


DES_ZERO_IV = bytes(8)
AES_ZERO_IV = bytes(16)

CIPHER_3DES = "3DES"
CIPHER_AES = "AES"

KDF_ENC = 1
KDF_MAC = 2
KDF_PACE = 3


def xor(a, b):
    return bytes(x ^ y for x, y in zip(a, b))


def pad(data, block=8):
    """ISO/IEC 9797-1 padding method 2: 80 then zeros to a whole block."""
    data = bytes(data) + b"\x80"
    rem = len(data) % block
    if rem:
        data += bytes(block - rem)
    return data


def unpad(data):
    i = len(data) - 1
    while i >= 0 and data[i] == 0:
        i -= 1
    if i < 0 or data[i] != 0x80:
        raise ProtocolError("SM: bad padding")
    return bytes(data[:i])


def adjust_parity(key):
    """Set each DES key byte to odd parity (the KDF output is not)."""
    out = bytearray(key)
    for i in range(len(out)):
        b = out[i] & 0xFE
        ones = 0
        x = b
        while x:
            ones += x & 1
            x >>= 1
        out[i] = b | (0 if ones % 2 else 1)
    return bytes(out)


def kdf(crypto, shared, counter, cipher=CIPHER_3DES, key_len=16):
    """9303-11 §9.7.1: keydata = H(K || c); 3DES and AES-128 use SHA-1, AES-192/256 SHA-256."""
    c = bytes((0, 0, 0, counter))
    if cipher == CIPHER_3DES:
        return adjust_parity(crypto.digest("sha1", bytes(shared) + c)[:16])
    if key_len == 16:
        return crypto.digest("sha1", bytes(shared) + c)[:16]
    return crypto.digest("sha256", bytes(shared) + c)[:key_len]


def retail_mac(crypto, key, data):
    """ISO/IEC 9797-1 MAC algorithm 3 with DES (the 3DES SM and BAC MAC); `data` already padded."""
    if len(data) % 8:
        raise ProtocolError("MAC: data not padded to 8")
    ka, kb = key[:8], key[8:16]
    h = crypto.des_cbc_encrypt(ka, DES_ZERO_IV, data)[-8:]
    h = crypto.des_cbc_decrypt(kb, DES_ZERO_IV, h)
    return crypto.des_cbc_encrypt(ka, DES_ZERO_IV, h)


def _cmac_subkey(block):
    v = int.from_bytes(block, "big") << 1
    if block[0] & 0x80:
        v ^= 0x87
    return (v & ((1 << 128) - 1)).to_bytes(16, "big")


def aes_cmac(crypto, key, data):
    """AES-CMAC (NIST SP 800-38B), the full 16 bytes; SM truncates it to 8."""
    l0 = crypto.aes_cbc_encrypt(key, AES_ZERO_IV, AES_ZERO_IV)
    k1 = _cmac_subkey(l0)
    data = bytes(data)
    n = len(data)
    if n and n % 16 == 0:
        last = xor(data[-16:], k1)
        head = data[:-16]
    else:
        k2 = _cmac_subkey(k1)
        full = (n // 16) * 16
        head = data[:full]
        tail = data[full:] + b"\x80" + bytes(15 - (n - full))
        last = xor(tail, k2)
    iv = crypto.aes_cbc_encrypt(key, AES_ZERO_IV, head)[-16:] if head else AES_ZERO_IV
    return crypto.aes_cbc_encrypt(key, iv, last)


def block_size(cipher):
    return 8 if cipher == CIPHER_3DES else 16


def encrypt(crypto, cipher, key, iv, data):
    if cipher == CIPHER_3DES:
        return crypto.des_cbc_encrypt(key, iv, data)
    return crypto.aes_cbc_encrypt(key, iv, data)


def decrypt(crypto, cipher, key, iv, data):
    if len(data) % block_size(cipher):
        raise ProtocolError("cipher text not a whole number of blocks")
    if cipher == CIPHER_3DES:
        return crypto.des_cbc_decrypt(key, iv, data)
    return crypto.aes_cbc_decrypt(key, iv, data)


def mac8(crypto, cipher, key, data):
    """The 8-byte MAC of secure messaging and of the PACE token; `data` padded to the block."""
    if cipher == CIPHER_3DES:
        return retail_mac(crypto, key, data)
    return aes_cmac(crypto, key, data)[:8]


def constant_time_equal(a, b):
    if len(a) != len(b):
        return False
    r = 0
    for x, y in zip(a, b):
        r |= x ^ y
    return r == 0
