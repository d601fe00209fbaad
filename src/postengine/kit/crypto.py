"""Keyed hashes and constant-time comparison for secrets (API keys, signed URLs)."""

import hashlib
import hmac


def keyed_hash(secret_key: bytes, value: str, *, purpose: str) -> str:
    """HMAC-SHA256 of `value` under `secret_key`, domain-separated by `purpose`.

    Stored instead of the secret itself: a database leak does not reveal usable keys, and without
    the server's secret key the hashes cannot even be brute-forced offline.
    """
    return hmac.new(secret_key, f"{purpose}\0{value}".encode(), hashlib.sha256).hexdigest()


def same(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())
