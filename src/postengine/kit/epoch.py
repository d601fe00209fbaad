"""A change counter shared through a file: one process bumps it, every other process sees the
change with one `stat` (about a microsecond), so in-process caches can be dropped at once."""

import os
import time
from pathlib import Path


class Epoch:
    def __init__(self, path: Path) -> None:
        self.path = path

    def token(self) -> tuple[int, int, int]:
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return (0, 0, 0)
        return (st.st_ino, st.st_mtime_ns, st.st_size)

    def bump(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}")
        tmp.write_text(str(time.time_ns()), encoding="ascii")
        os.replace(tmp, self.path)  # a new inode each time, so the token always changes
