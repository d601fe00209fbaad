from enum import StrEnum


class Scope(StrEnum):
    READ = "read"
    WRITE = "write"
    AI = "ai"


def parse_scopes(text: str) -> frozenset[Scope]:
    """`read,write,ai` → the set; unknown names raise ValueError naming the valid ones."""
    names = [part.strip() for part in text.split(",") if part.strip()]
    if not names:
        raise ValueError("at least one scope is needed: read, write, ai")
    try:
        return frozenset(Scope(name) for name in names)
    except ValueError:
        bad = [name for name in names if name not in Scope.__members__.values()]
        raise ValueError(f"unknown scope {bad[0]!r}; valid scopes are read, write, ai") from None


def format_scopes(scopes: frozenset[Scope]) -> str:
    return ",".join(scope.value for scope in Scope if scope in scopes)
