"""Benchmark: incremental cycles of a large org, each from one saved state after its first run.

    python -m bench.cycles prepare DIR [--crm C] [--accounts N] [--seed S]   # once: org, runs
    python -m bench.cycles run DIR [--cycles N] [--repeat R] [--profile-cycles P]
    python -m bench.cycles first DIR [--repeat R]   # the first run again, of the org prepared

`bench.pipeline` measures a cycle only after generating the org and running its first run, eight
minutes and more for the 200,000-account reference org, so trying a change to the cycle costs a
quarter of an hour a figure. ``prepare`` does that once (``--crm``: Salesforce by default, or
HubSpot; SQLite): the org generated into DIR/org, served with its CRM's state kept in that folder
(`bench.pipeline.served`), then the first run, its rerun (the echo of its writes) and a cycle with
nothing new, as `bench.pipeline` runs them, into DIR/state.db; then the state database and the CRM's
saved state are copied aside. Each of ``run``'s ``--repeat`` rounds restores both copies (the
database's write-ahead log is empty then: the run before left none) and runs ``--cycles`` cycles,
each after 1,000 web touches added through the sandbox's admin route
(`bench.pipeline.new_activities`), as `bench.pipeline` does. A cycle but the first also pulls back
the writes of the one before it. Local seconds leave out HTTP exchanges, as in `bench.pipeline`.
``first`` runs the first run again, ``--repeat`` times, each into a state database of its own
(DIR/first.db, removed after) against the org as generated, served without the CRM's saved state: a
change to the first run measured in four minutes a round, not the six of a ``prepare``, and the same
org for every round and every version of the code.

A restore copies gigabytes; ``run`` syncs them to disk before the sandbox starts, so their
writing-back does not land in the cycles measured. The figures are each round's cycles
(local seconds and stages, and the process's read and write calls and the megabytes they
moved, `bench.common.io_since`) and, per position, their medians over the rounds: where a change
to how much the cycle writes is lost in the seconds' noise, its write calls show it. Every command
also times this machine's loop before and after (``machine``, `bench.common.machine_speed`). A state
prepared by an older Handoff is refused (the store opens only a database at this release's
head); prepare again.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bench.common import DEFAULT_PRESET, emit, loop_seconds, machine_speed, progress
from bench.pipeline import (
    CYCLE,
    SPEC,
    Bench,
    HttpWait,
    SavedOrg,
    Served,
    SimulatedClock,
    connector,
    generated_and_served,
    new_activities,
    served,
)
from sandbox.org import read_manifest
from sandbox.world import world_from
from sync.store import Store

CRMS = ("salesforce", "hubspot")
_STATE, _SAVED, _CLOCK, _FIRST = "state.db", "state.saved.db", "clock.json", "first.db"


def prepare(folder: Path, accounts: int, seed: int, crm: str = CRMS[0]) -> dict[str, Any]:
    """The org, its first run, rerun and cycle with nothing new on ``crm``'s sandbox; the state
    copied aside (the CRM noted with the clock: ``run`` and ``first`` serve the same)."""
    folder.mkdir(parents=True, exist_ok=True)
    if any(folder.iterdir()):
        raise SystemExit(f"{folder} is not empty: prepare into a new folder")
    world = world_from(DEFAULT_PRESET, {})
    figures: dict[str, Any] = {"crm": crm, "accounts": accounts, "seed": seed}
    with generated_and_served(crm, accounts, seed, world, folder, keep=True) as (org, sandbox):
        with _benched(sandbox, folder / _STATE) as (bench, clock):
            end = org.manifest.end_at
            figures["first_run"] = bench.run("first run", end, full=True).figures()
            clock.sleep(CYCLE.total_seconds())
            figures["rerun"] = bench.run("rerun", end).figures()
            clock.sleep(CYCLE.total_seconds())
            figures["nochange"] = bench.run("cycle with nothing new", end + CYCLE).figures()
        (folder / _CLOCK).write_text(json.dumps({"offset": clock.offset, "crm": crm}))
    log = Path(f"{folder / _STATE}-wal")
    if log.exists() and log.stat().st_size:  # the last connection closed copies and removes it
        raise SystemExit(f"{log} still holds pages: the state database was not closed")
    progress("copying the state aside")
    shutil.copyfile(folder / _STATE, folder / _SAVED)
    shutil.copytree(_crm_state(folder), _crm_saved(folder))
    return figures


def run(folder: Path, cycles: int, repeat: int, profiles: Path | None = None) -> dict[str, Any]:
    """``repeat`` rounds of ``cycles`` cycles, each round from the saved state; with
    ``profiles``, each cycle's cProfile is written to profiles/round-R/cycle_N.prof."""
    rounds = [
        _round(folder, cycles, number, profiles and profiles / f"round-{number + 1}")
        for number in range(repeat)
    ]
    medians = [
        round(statistics.median(one[position]["local_seconds"] for one in rounds), 3)
        for position in range(cycles)
    ]
    return {"rounds": rounds, "median_local_seconds": medians, "median_io": _median_io(rounds)}


def first(folder: Path, repeat: int) -> dict[str, Any]:
    """``repeat`` first runs of the org prepared in ``folder``, each from an empty state database
    and the CRM as generated (what ``prepare``'s first run met); their figures and the median of
    their local seconds."""
    org = SavedOrg(folder / "org", read_manifest(folder / "org"))
    crm = _saved_clock(folder)["crm"]
    state = folder / _FIRST
    runs = []
    try:
        for number in range(repeat):
            progress(f"first run {number + 1} of {repeat}")
            _remove(state)
            with served(crm, org.path) as sandbox, _benched(sandbox, state) as (bench, _):
                # not kept: the CRM's saved state stays as it is
                runs.append(bench.run("first run", org.manifest.end_at, full=True).figures())
    finally:
        _remove(state)
    median = statistics.median(one["local_seconds"] for one in runs)
    return {"crm": crm, "runs": runs, "median_local_seconds": round(median, 3)}


@contextmanager
def _benched(sandbox: Served, database: Path) -> Iterator[tuple[Bench, SimulatedClock]]:
    """A bench of the sandbox served from a clock of its own, our fields set up in its CRM, and
    the state database at ``database``; and its clock."""
    clock, wait = SimulatedClock(), HttpWait()
    crm = connector(sandbox, clock, wait)
    crm.ensure_schema(SPEC)
    with Store.open(f"sqlite:///{database}") as store:
        yield Bench(sandbox, crm, store, clock, wait), clock


def _remove(database: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        Path(f"{database}{suffix}").unlink(missing_ok=True)


def _median_io(rounds: list[list[dict[str, Any]]]) -> list[dict[str, float]] | None:
    """Per position, the median of each I/O figure over the rounds (None where unread)."""
    if not rounds or any(cycle["io"] is None for one in rounds for cycle in one):
        return None
    return [
        {
            name: statistics.median(one[position]["io"][name] for one in rounds)
            for name in rounds[0][position]["io"]
        }
        for position in range(len(rounds[0]))
    ]


def _round(folder: Path, cycles: int, number: int, profiles: Path | None) -> list[dict[str, Any]]:
    progress(f"round {number + 1}: restoring the saved state")
    _remove(folder / _STATE)
    shutil.copyfile(folder / _SAVED, folder / _STATE)
    shutil.rmtree(_crm_state(folder))
    shutil.copytree(_crm_saved(folder), _crm_state(folder))
    os.sync()  # the copies' writing-back is not the cycles'
    org = SavedOrg(folder / "org", read_manifest(folder / "org"))
    saved = _saved_clock(folder)
    crm = saved["crm"]
    measured = []
    with served(crm, org.path, keep=True) as sandbox:
        clock, wait = SimulatedClock(), HttpWait()
        clock.offset = saved["offset"]
        client = connector(sandbox, clock, wait)
        with Store.open(f"sqlite:///{folder / _STATE}") as store:
            bench = Bench(sandbox, client, store, clock, wait, profiles)
            end = org.manifest.end_at
            for position in range(cycles):
                added = new_activities(bench, org, crm, end + position * CYCLE, 7 + position)
                clock.sleep(CYCLE.total_seconds())
                one = bench.run(f"cycle {position + 1}", end + (2 + position) * CYCLE)
                measured.append({**one.figures(), "new_activities": added})
    return measured


def _saved_clock(folder: Path) -> dict[str, Any]:
    """The simulated clock's offset where ``prepare`` left it, and the CRM it served (a folder
    prepared before the CRM was noted is Salesforce's)."""
    return {"crm": CRMS[0], **json.loads((folder / _CLOCK).read_text())}


def _crm_state(folder: Path) -> Path:
    return folder / "org" / "crm"


def _crm_saved(folder: Path) -> Path:
    return folder / "crm.saved"


def main() -> None:
    """Prepare or run, and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    preparing = commands.add_parser("prepare", help="generate, first run, echo; save the state")
    preparing.add_argument("folder", type=Path)
    preparing.add_argument("--crm", choices=CRMS, default=CRMS[0])
    preparing.add_argument("--accounts", type=int, default=200_000)
    preparing.add_argument("--seed", type=int, default=7)
    running = commands.add_parser("run", help="cycles from the saved state")
    running.add_argument("folder", type=Path)
    running.add_argument("--cycles", type=int, default=2)
    running.add_argument("--repeat", type=int, default=1)
    running.add_argument(
        "--profile-cycles",
        metavar="DIR",
        type=Path,
        help="write each cycle's cProfile into DIR (its seconds then include the profiler's)",
    )
    again = commands.add_parser("first", help="the first run again, of the org prepared")
    again.add_argument("folder", type=Path)
    again.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args()
    if args.command == "first" and args.repeat < 1:
        parser.error("--repeat must be at least 1")
    if args.command == "run" and (args.cycles < 1 or args.repeat < 1):
        parser.error("--cycles and --repeat must be at least 1")
    began = time.perf_counter()
    loop_before = loop_seconds()
    seconds: dict[str, float | None]  # what `machine_speed` gives at one second a loop
    if args.command == "prepare":
        figures = prepare(args.folder, args.accounts, args.seed, args.crm)
        seconds = {"first_run_local_seconds": figures["first_run"]["local_seconds"]}
    elif args.command == "first":
        figures = first(args.folder, args.repeat)
        seconds = {"median_local_seconds": figures["median_local_seconds"]}
    else:
        figures = run(args.folder, args.cycles, args.repeat, args.profile_cycles)
        medians = enumerate(figures["median_local_seconds"], start=1)
        seconds = {f"cycle_{n}_median_local_seconds": median for n, median in medians}
    figures["machine"] = machine_speed(loop_before, seconds)
    emit(
        {"command": args.command, **figures, "bench_seconds": round(time.perf_counter() - began, 1)}
    )


if __name__ == "__main__":
    main()
