"""The benchmarks' I/O figures: the process's read and write calls, and what they moved."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.common import io_counts, io_since


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
