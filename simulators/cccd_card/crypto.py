"""The card's crypto provider (the interface of protocols.emrtd.primitives) on `cryptography`.

The driver has its own copy (drivers/idcard/crypto.py): the layers forbid simulators and
drivers from importing each other."""

from __future__ import annotations

import hashlib
import os

from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes


def _des_key(key: bytes) -> bytes:
    # three-key form: K1 K2 K1 for two-key 3DES, K K K for single DES
    return key * 3 if len(key) == 8 else key[:16] + key[:8] if len(key) == 16 else key


class CardCrypto:
    def random(self, n: int) -> bytes:
        return os.urandom(n)

    def digest(self, name: str, data: bytes) -> bytes:
        return hashlib.new(name, bytes(data)).digest()

    def des_cbc_encrypt(self, key: bytes, iv: bytes, data: bytes) -> bytes:
        e = Cipher(TripleDES(_des_key(bytes(key))), modes.CBC(bytes(iv))).encryptor()
        return e.update(bytes(data)) + e.finalize()

    def des_cbc_decrypt(self, key: bytes, iv: bytes, data: bytes) -> bytes:
        d = Cipher(TripleDES(_des_key(bytes(key))), modes.CBC(bytes(iv))).decryptor()
        return d.update(bytes(data)) + d.finalize()

    def aes_cbc_encrypt(self, key: bytes, iv: bytes, data: bytes) -> bytes:
        e = Cipher(algorithms.AES(bytes(key)), modes.CBC(bytes(iv))).encryptor()
        return e.update(bytes(data)) + e.finalize()

    def aes_cbc_decrypt(self, key: bytes, iv: bytes, data: bytes) -> bytes:
        d = Cipher(algorithms.AES(bytes(key)), modes.CBC(bytes(iv))).decryptor()
        return d.update(bytes(data)) + d.finalize()
