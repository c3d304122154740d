"""What every CLI test shares: an empty working directory free of the caller's HANDOFF_* variables,
and a runner that gives back the exit code and everything printed."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from handoff.cli import app


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
