"""The benchmarks' I/O figures (the process's read and write calls, and what they moved) and
the machine's speed they are read beside."""

from __future__ import annotations

from pathlib import Path

import pytest

import bench.common
from bench.common import io_counts, io_since, loop_seconds, machine_speed


def test_io_since_counts_the_write_calls_and_megabytes_of_the_process(tmp_path: Path) -> None:
    before = io_counts()
    if before is None:
        pytest.skip("this system has no /proc/self/io")
    with (tmp_path / "written").open("wb", buffering=0) as file:
        for _ in range(256):  # 1 MiB in 256 calls
            file.write(b"x" * 4096)
    moved = io_since(before)

    assert moved is not None
    assert moved["write_calls"] >= 256 and moved["written_mb"] >= 1.0
    assert set(moved) == {"read_calls", "write_calls", "read_mb", "written_mb"}


def test_io_since_nothing_read_before_is_none() -> None:
    assert io_since(None) is None


def test_seconds_are_given_as_on_a_machine_of_one_second_a_loop(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(bench.common, "loop_seconds", lambda: 2.5)

    figures = machine_speed(1.5, {"first_run_local_seconds": 200.0, "cycle": None})

    assert figures == {
        "loop_seconds": {"before": 1.5, "after": 2.5},
        "at_one_second_a_loop": {"first_run_local_seconds": 100.0, "cycle": None},
    }


def test_the_loop_is_timed_in_seconds() -> None:
    took = loop_seconds(rounds=1)

    assert 0.05 < took < 60
