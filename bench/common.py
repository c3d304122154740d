"""Shared benchmark plumbing: progress on stderr, one JSON object as the last stdout line."""

from __future__ import annotations

import json
import resource
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["emit", "peak_rss_mb", "progress", "pull_figures", "timed"]


def progress(message: str) -> None:
    """A progress line on stderr (stdout is reserved for the result)."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, in MiB (Linux reports KiB)."""
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


@contextmanager
def timed() -> Iterator[list[float]]:
    """Measure a block's wall time; the elapsed seconds land in the yielded list."""
    box: list[float] = []
    start = time.perf_counter()
    try:
        yield box
    finally:
        box.append(time.perf_counter() - start)


def emit(figures: dict[str, object]) -> None:
    """Print the benchmark's figures as one JSON object, the last line of stdout."""
    print(json.dumps(figures, sort_keys=True), flush=True)


def pull_figures(counts: dict[str, int], seconds: float) -> dict[str, object]:
    """Records pulled per object, the time it took and the records per second."""
    return {
        "records": counts,
        "seconds": round(seconds, 2),
        "records_per_second": round(sum(counts.values()) / seconds),
    }
