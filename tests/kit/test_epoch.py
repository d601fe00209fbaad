"""kit.epoch: another process's bump shows within the check interval, this process's at once."""

import os
from pathlib import Path

import pytest

from postengine.kit import epoch as epoch_module
from postengine.kit.epoch import Epoch, EpochCache


def bump_from_elsewhere(path: Path, n: int) -> None:
    """What another process's `Epoch.bump` does to the file, without this process knowing."""
    tmp = path.with_name(f".other{n}")
    tmp.write_text(str(n))
    os.replace(tmp, path)


def test_another_process_bump_shows_after_the_interval(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    now = [1000.0]
    monkeypatch.setattr(epoch_module.time, "monotonic", lambda: now[0])
    path = tmp_path / "epoch"
    epoch = Epoch(path, check_seconds=0.05)
    before = epoch.token()
    bump_from_elsewhere(path, 1)
    now[0] += 0.01
    assert epoch.token() == before  # within the interval the file is not looked at
    now[0] += 0.05
    assert epoch.token() != before


def test_a_bump_in_this_process_shows_at_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(epoch_module.time, "monotonic", lambda: 1000.0)  # time stands still
    path = tmp_path / "epoch"
    reader = Epoch(path, check_seconds=60)
    cache: EpochCache[str, int] = EpochCache(reader, ttl=60)
    cache.store("key", 1)
    assert cache.lookup("key") == (1,)
    Epoch(path).bump()  # another instance, as the CLI helpers make
    assert cache.lookup("key") is None
