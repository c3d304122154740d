"""Handoff in a process of its own, for the crash tests to kill: `handoff sync` as a user runs it,
or the shell's own code for that command stopped at a chosen point until killed.

    python -m tests.crash_driver     # imports Handoff, prints "ready", then reads one order:
    {"directory": "...", "env": {...}, "point": null}        # `handoff sync` there
    {"directory": "...", "env": {...}, "point": "stage:2"}   # stopped before stage 2

A process is started ahead of its case (`Spare`), so importing what `handoff sync` runs on
(polars, the database layer, the CRM clients) happens while the previous case runs; it is a
fresh interpreter, not a fork (polars' thread pool does not survive a fork). Once stopped at its
point it prints "paused"; what Handoff itself prints goes to OUTPUT in its working directory.
"""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any
from uuid import uuid4

__all__ = ["OUTPUT", "Spare"]

OUTPUT = "handoff.out"


class Spare:
    """One driver process started ahead, ready for the next order."""

    def __init__(self) -> None:
        self._next: subprocess.Popen[str] | None = None

    def take(
        self, directory: Path, env: dict[str, str], point: str | None
    ) -> subprocess.Popen[str]:
        """The waiting process, given its order; another is started for the next case."""
        process = self._next or _start()
        self._next = _start()
        assert process.stdout is not None and process.stdin is not None
        assert process.stdout.readline() == "ready\n", "the crash driver did not start"
        order = {"directory": str(directory), "env": env, "point": point}
        process.stdin.write(json.dumps(order) + "\n")
        process.stdin.flush()
        return process

    def close(self) -> None:
        """End the process started ahead."""
        if self._next is not None:
            self._next.kill()
            self._next.communicate()


def _start() -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.crash_driver"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "COLUMNS": "200", "PYTHONPATH": _ROOT + os.pathsep + _PATH},
    )


# the driver runs as `python -m tests.crash_driver` from the test's own directory: the
# repository's root must be on its path whatever directory pytest was started from
_ROOT = str(Path(__file__).resolve().parent.parent)
_PATH = os.environ.get("PYTHONPATH", "")


_SYNC_MODULES = (
    "connectors.hubspot",
    "connectors.salesforce",
    "handoff.reports",
    "handoff.runs",
    "sandbox.salesforce",
    "sync.run",
)


def _serve_one_order() -> None:
    """Import Handoff, say ready, then carry out the one order read from stdin."""
    # the slow imports, before the order arrives: the CLI imports what a command runs on only
    # when it runs, so what `handoff sync` loads is imported here
    import handoff.cli

    for name in _SYNC_MODULES:
        importlib.import_module(name)

    print("ready", flush=True)
    order = json.loads(sys.stdin.readline())
    told = os.fdopen(os.dup(1), "w")
    os.chdir(order["directory"])
    os.environ.update(order["env"])
    printed = os.open(OUTPUT, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    os.dup2(printed, 1)
    os.dup2(printed, 2)
    if order["point"] is None:
        sys.argv = ["handoff", "sync"]
        handoff.cli.main()
    else:
        _paused(order["point"], told)


def _paused(point: str, told: Any) -> None:
    """The shell's sync run, stopped at ``point`` ("stage:N": at the heartbeat before stage N;
    "write:done": at the write stage's last progress tick) until killed."""
    from handoff.crm import open_crm
    from handoff.runs import lock_key, run_config
    from handoff.settings import load_settings
    from sync import Store
    from sync.lock import Holder, run_lock
    from sync.run import run_sync

    def pause(where: str) -> None:
        if where == point:
            told.write("paused\n")
            told.flush()
            while True:
                time.sleep(60)

    settings, beats = load_settings(None), []
    with Store.open(settings.state.database_url) as store, open_crm(settings) as crm:
        run_id = uuid4().hex
        with run_lock(store, lock_key(settings, crm), Holder.this_process(run_id)) as lock:

            def heartbeat() -> None:
                beats.append(1)
                lock.heartbeat()
                pause(f"stage:{len(beats)}")

            def progress(stage: str, done: int, total: int | None) -> None:
                if total and done == total:
                    pause(f"{stage}:done")

            run_sync(
                run_config(settings), crm.connector, store, crm.now(),
                progress=progress, run_id=run_id, heartbeat=heartbeat,
            )  # fmt: skip


if __name__ == "__main__":
    _serve_one_order()
