"""What every CLI test shares: an empty working directory free of the caller's HANDOFF_* variables,
a runner that gives back the exit code and everything printed, one that runs `handoff` in a
process of its own, and a check that a test leaves no sandbox running behind it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from handoff.cli import app
from sandbox.discovery import DISCOVERY_FILE, process_alive, read_announcement, wait_for_exit


@pytest.fixture
def isolated_cli(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The test runs in an empty directory with no HANDOFF_* variables from the caller."""
    monkeypatch.chdir(tmp_path)
    for name in [name for name in os.environ if name.startswith("HANDOFF_")]:
        monkeypatch.delenv(name)


def run_cli(*args: str) -> tuple[int, str]:
    """`handoff ARGS...` in process: the exit code and stdout with stderr."""
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.output


def handoff(*args: str, cwd: Path | None = None, **env: str) -> subprocess.CompletedProcess[str]:
    """`handoff ARGS...` in a process of its own, as a user runs it; ``env`` adds variables."""
    return subprocess.run(
        [sys.executable, "-m", "handoff", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env={**os.environ, "COLUMNS": "200", **env},
        timeout=300,
        check=False,
    )


@pytest.fixture
def no_sandbox_left_behind(tmp_path: Path) -> Iterator[None]:
    """After the test: stop every sandbox it announced (from any directory under its own) as
    `handoff sandbox stop` does, then fail if any process is still running there."""
    yield
    for discovery in tmp_path.rglob(str(DISCOVERY_FILE)):
        found = read_announcement(discovery)
        if found is not None and process_alive(found.pid):
            os.kill(found.pid, signal.SIGTERM)
            wait_for_exit(found.pid, 60)
    leaked = _processes_under(tmp_path)
    for pid in leaked:
        os.kill(pid, signal.SIGKILL)
    assert leaked == [], "sandbox processes left running"


def _processes_under(directory: Path) -> list[int]:
    """Live processes (other than this one) working in ``directory`` or below (Linux /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            where = Path(os.readlink(entry / "cwd"))
        except (OSError, ValueError):
            continue
        if entry.name.isdigit() and where.is_relative_to(directory):
            found.append(int(entry.name))
    return [pid for pid in found if pid != os.getpid() and process_alive(pid)]
