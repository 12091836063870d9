"""Password hashing with a memory-hard KDF (scrypt, from the standard library).

Never store a password, and never a fast hash of one (SHA-256 of a password is cracked at billions of
guesses per second on a GPU). scrypt with a per-user random salt makes every guess cost memory and time.
The stored form carries its own parameters, so they can be raised later without breaking old hashes:
``scrypt$n=16384,r=8,p=1$<salt hex>$<hash hex>``.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

N, R, P, LENGTH = 2**14, 8, 1, 32


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=N, r=R, p=P, dklen=LENGTH)
    return f"scrypt$n={N},r={R},p={P}${salt.hex()}${digest.hex()}"


def verify_password(password: str, stored: str) -> bool:
    """Constant-time comparison, so the time taken does not leak how much of the hash matched."""
    try:
        scheme, params, salt_hex, digest_hex = stored.split("$")
        options = dict(item.split("=") for item in params.split(","))
        if scheme != "scrypt":
            return False
        digest = hashlib.scrypt(password.encode(), salt=bytes.fromhex(salt_hex), n=int(options["n"]),
                                r=int(options["r"]), p=int(options["p"]), dklen=len(digest_hex) // 2)
    except (ValueError, KeyError):
        return False
    return hmac.compare_digest(digest.hex(), digest_hex)
