"""Identifier forms from API.md §1.2: a short prefix and 24 lowercase hex characters (96 random bits)."""

import re
import secrets

_HEX24 = re.compile(r"[0-9a-f]{24}")


def new_id(prefix: str) -> str:
    """`prefix_` + 24 random lowercase hex characters, e.g. `med_3e9a…`."""
    return f"{prefix}_{secrets.token_hex(12)}"


def is_id(value: str, prefix: str) -> bool:
    """True when `value` has exactly the form that `new_id(prefix)` produces."""
    head = prefix + "_"
    return (
        value.startswith(head) and len(value) == len(head) + 24 and bool(_HEX24.fullmatch(value, len(head)))
    )
