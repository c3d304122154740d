"""Shared benchmark plumbing: progress on stderr, one JSON object as the last stdout line."""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sandbox.world import (
    DEFAULT_PRESET,
    PRESETS,
    WorldError,
    WorldParams,
    parameter_names,
    parse_overrides,
    world_from,
)

__all__ = [
    "add_world_options",
    "emit",
    "io_counts",
    "io_since",
    "loop_seconds",
    "machine_speed",
    "peak_rss_mb",
    "progress",
    "pull_figures",
    "stage_peak_mb",
    "timed",
    "world_of",
]


def progress(message: str) -> None:
    """A progress line on stderr (stdout is reserved for the result)."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# the loop `loop_seconds` times, as the figures of bench/RESULTS.md and the README were timed: a
# script's top level, its names in a dict (in a function they are local and the loop ~2.2x
# faster)
_LOOP = compile(
    "total = 0\nfor number in range(20_000_000):\n    total += number\n", "loop", "exec"
)


def loop_seconds(rounds: int = 3) -> float:
    """This machine's speed now: the median seconds of ``rounds`` loops of 20M Python additions.

    The machines these benchmarks run on differ up to 4x in speed from day to day (a loop took
    0.86 s on one, 3.9 s on another), and a product's local seconds follow the loop's: the
    HubSpot reference org's first run took 139 s on a machine of 1.13-1.24 s a loop and 201 s on
    one of 1.6-2.1 s. A figure of seconds is read beside the loop of the same run."""
    took = []
    for _ in range(rounds):
        began = time.perf_counter()
        exec(_LOOP, {})  # our own constant code, compiled once
        took.append(time.perf_counter() - began)
    return round(sorted(took)[len(took) // 2], 3)


def machine_speed(before: float, seconds: dict[str, float | None]) -> dict[str, object]:
    """The loop before the runs (``before``) and after them, and each of ``seconds`` as on a
    machine of one second a loop (divided by the mean of the two loops): figures of different
    days compared at one speed."""
    after = loop_seconds()
    mean = (before + after) / 2
    return {
        "loop_seconds": {"before": before, "after": after},
        "at_one_second_a_loop": {
            name: None if value is None else round(value / mean, 3)
            for name, value in seconds.items()
        },
    }


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, in MiB (Linux reports KiB)."""
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def stage_peak_mb() -> float | None:
    """Peak resident memory since the last call, in MiB, then reset to what is resident now
    (Linux: VmHWM, reset through /proc/self/clear_refs); None where that cannot be read."""
    try:
        status = Path("/proc/self/status").read_text()
        peak = next(line for line in status.splitlines() if line.startswith("VmHWM:"))
        Path("/proc/self/clear_refs").write_text("5")
    except (OSError, StopIteration):
        return None
    return round(int(peak.split()[1]) / 1024, 1)


# /proc/self/io's counters, as `io_since` names them: read and write system calls, and the bytes
# they moved (files and pipes alike), of every thread of the process (the store's log checkpoint
# thread too)
_IO = {"syscr": "read_calls", "syscw": "write_calls", "rchar": "read_mb", "wchar": "written_mb"}


def io_counts() -> dict[str, int] | None:
    """This process's I/O counters so far (Linux: /proc/self/io); None where they cannot be
    read."""
    try:
        text = Path("/proc/self/io").read_text()
    except OSError:
        return None
    held = dict(line.split(": ") for line in text.splitlines() if ": " in line)
    try:
        return {name: int(held[name]) for name in _IO}
    except (KeyError, ValueError):
        return None


def io_since(before: dict[str, int] | None) -> dict[str, float] | None:
    """The I/O since ``before`` (`io_counts`): read and write calls, and megabytes (MiB) read
    and written. Unlike seconds, these barely move between runs of the same work on a noisy
    machine: what a change saves in pages written shows here when its time is lost in noise."""
    after = io_counts()
    if before is None or after is None:
        return None
    moved = {name: after[name] - before[name] for name in _IO}
    return {
        label: round(moved[name] / 2**20, 1) if label.endswith("_mb") else moved[name]
        for name, label in _IO.items()
    }


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


def add_world_options(parser: argparse.ArgumentParser, preset: str | None = DEFAULT_PRESET) -> None:
    """``--preset NAME`` (default ``preset``) and repeatable ``--world NAME=VALUE`` overrides."""
    parser.add_argument(
        "--preset", choices=sorted(PRESETS), default=preset, help="the world's preset"
    )
    parser.add_argument(
        "--world",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help=f"override a world parameter (repeatable): {', '.join(parameter_names())}",
    )


def world_of(
    parser: argparse.ArgumentParser, args: argparse.Namespace, preset: str | None = None
) -> WorldParams:
    """The world of ``--preset`` (or ``preset``) with every ``--world`` override; a bad name or
    value ends the run with the parser's usage and the reason."""
    try:
        return world_from(preset or args.preset, parse_overrides(args.world))
    except WorldError as error:
        parser.error(str(error))
