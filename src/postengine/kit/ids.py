"""Identifier forms from API.md §1.2: a short prefix and 24 lowercase hex characters (96 random bits)."""

import secrets


def new_id(prefix: str) -> str:
    """`prefix_` + 24 random lowercase hex characters, e.g. `med_3e9a…`."""
    return f"{prefix}_{secrets.token_hex(12)}"
