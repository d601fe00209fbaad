"""`Server-Timing` (W3C): where a request's time went, for operators and for `bench/`."""

import time
from collections.abc import Iterator
from contextlib import contextmanager


class ServerTiming:
    def __init__(self) -> None:
        self._entries: dict[str, float] = {}

    def add(self, name: str, milliseconds: float) -> None:
        self._entries[name] = self._entries.get(name, 0.0) + milliseconds

    @contextmanager
    def measure(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.add(name, (time.perf_counter() - start) * 1000)

    def header(self) -> str:
        return ", ".join(f"{name};dur={ms:.2f}" for name, ms in self._entries.items())
