"""Where a lasting sandbox says it runs: ``.handoff/sandbox.json`` in the directory it was started
from (next to ``handoff.db`` and ``orgs/`` by default), so later commands there find it.

    announce(DISCOVERY_FILE, Announcement(pid=os.getpid(), url=..., crm=..., org=..., token=...))
    found = read_announcement(DISCOVERY_FILE)      # None when no sandbox announced itself
    if found and not process_alive(found.pid):     # a sandbox that died without withdrawing
        withdraw(DISCOVERY_FILE, found.pid)

The file holds the sandbox's token, so only its owner may read it (mode 0600), and it is
replaced by a rename, so a reader never sees half of it.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from sandbox.world import WorldParams

__all__ = [
    "DISCOVERY_FILE",
    "LOG_FILE",
    "Announcement",
    "StartError",
    "announce",
    "process_alive",
    "read_announcement",
    "spawn_detached",
    "start_detached",
    "wait_for_exit",
    "withdraw",
    "world_record",
]

DISCOVERY_FILE = Path(".handoff") / "sandbox.json"
LOG_FILE = Path(".handoff") / "sandbox.log"  # what a sandbox started in the background prints
_EXIT_POLL_SECONDS = 0.1
_GIVE_UP_SECONDS = 30.0
_LOG_LINES = 10  # of a sandbox that failed to start, shown to whoever started it
# A parent that starts the command in a session of its own and exits at once: the sandbox is
# then nobody's child (the init process reaps it), so no caller waits on it or leaves a zombie.
_SPAWN = """
import subprocess, sys
with open(sys.argv[1], "ab") as log:
    child = subprocess.Popen(sys.argv[2:], stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                             start_new_session=True)
print(child.pid)
"""


class StartError(Exception):
    """A sandbox started in the background ended, or took too long, before announcing itself;
    ``lines`` are the last it logged."""

    def __init__(self, lines: tuple[str, ...]) -> None:
        super().__init__("\n".join(lines))
        self.lines = lines


@dataclass(frozen=True)
class Announcement:
    """A running sandbox: its process, address, dialect, org directory (None when its org was
    generated in memory, so nothing is kept), what it serves beyond them (rate-limit tier, the
    org's world, its convention: a client compares them with what it asks for), and token
    (never shown)."""

    pid: int
    url: str
    crm: str
    org: str | None
    started: str  # ISO 8601 UTC
    tier: str | None = None  # the HubSpot rate-limit tier it enforces
    world: dict[str, Any] | None = None  # the org's world (`world_record`); None: not known
    convention: str | None = None  # how the org records activity (`handoff sandbox serve`)
    token: str = field(default="", repr=False)


def world_record(world: WorldParams) -> dict[str, Any]:
    """A world as an announcement holds it: its preset and every parameter."""
    return {"preset": world.preset, **world.parameters()}


def announce(path: Path, found: Announcement) -> None:
    """Write the announcement, readable by its owner only, replacing any earlier one whole."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    handle = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(handle, "w") as file:
        file.write(json.dumps(asdict(found), indent=1) + "\n")
    os.replace(temporary, path)


def read_announcement(path: Path) -> Announcement | None:
    """The sandbox announced in ``path``; None when there is none or the file is unreadable
    (a garbled file is as good as none: the next sandbox replaces it)."""
    try:
        raw = json.loads(path.read_text())
        return Announcement(**{f.name: raw[f.name] for f in fields(Announcement) if f.name in raw})
    except (OSError, ValueError, TypeError):
        return None


def withdraw(path: Path, pid: int) -> bool:
    """Remove the announcement if it is still ``pid``'s; whether it was."""
    found = read_announcement(path)
    if found is None or found.pid != pid:
        return False
    path.unlink(missing_ok=True)
    return True


def process_alive(pid: int) -> bool:
    """Whether a process ``pid`` runs (a zombie, dead but not yet reaped, does not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: it runs, and is not ours
        return True
    stat = Path(f"/proc/{pid}/stat")
    try:
        return stat.read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):  # no /proc (macOS): trust kill()
        return True


def wait_for_exit(pid: int, seconds: float) -> bool:
    """Wait up to ``seconds`` for process ``pid`` to end; whether it did."""
    deadline = time.monotonic() + seconds
    while process_alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(_EXIT_POLL_SECONDS)
    return True


def spawn_detached(command: Sequence[str], log: Path, env: Mapping[str, str] | None = None) -> int:
    """Start ``command`` detached from this process and its terminal, its output appended to
    ``log``; its pid."""
    log.parent.mkdir(parents=True, exist_ok=True)
    started = subprocess.run(
        [sys.executable, "-c", _SPAWN, str(log), *command],
        env=None if env is None else dict(env),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        check=True,
    )
    return int(started.stdout)


def start_detached(
    command: Sequence[str], path: Path, log: Path, seconds: float, env: Mapping[str, str]
) -> Announcement:
    """Start a sandbox detached and wait up to ``seconds`` for it to announce itself in
    ``path``; raise `StartError` with the last lines it logged when it ends or takes longer
    (it is stopped then)."""
    offset = log.stat().st_size if log.exists() else 0
    pid = spawn_detached(command, log, env)
    deadline = time.monotonic() + seconds
    while process_alive(pid) and time.monotonic() < deadline:
        found = read_announcement(path)
        if found is not None and found.pid == pid:
            return found
        time.sleep(_EXIT_POLL_SECONDS)
    if process_alive(pid):
        os.kill(pid, signal.SIGTERM)
        wait_for_exit(pid, _GIVE_UP_SECONDS)
    printed = log.read_bytes()[offset:].decode(errors="replace").strip().splitlines()
    raise StartError(tuple(printed[-_LOG_LINES:]) or (f"it ended without a word; see {log}",))
