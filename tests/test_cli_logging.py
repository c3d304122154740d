"""`[logging] level`: what Handoff's modules log reaches stderr at that level and above."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from handoff.shell import log_at
from tests.cli_fixtures import handoff


@pytest.mark.usefixtures("isolated_cli", "no_sandbox_left_behind")
def test_a_sync_says_its_stages_in_the_log_at_debug_and_not_at_the_default_info() -> None:
    Path("settings.toml").write_text('[sandbox]\naccounts = 40\n[logging]\nlevel = "DEBUG"\n')
    handoff("setup")
    debug = handoff("sync", "--dry-run")
    quiet = handoff("sync", "--dry-run", HANDOFF_LOGGING__LEVEL="INFO")
    handoff("sandbox", "stop")

    assert debug.returncode == 0 and quiet.returncode == 0, debug.stderr + quiet.stderr
    assert " DEBUG sync.run: stage mirror started" in debug.stderr
    assert " DEBUG sync.run: stage write ended after " in debug.stderr
    assert "DEBUG" not in quiet.stderr and "stage mirror" not in quiet.stdout + quiet.stderr


def test_the_level_applies_to_handoff_s_modules_and_a_line_goes_to_the_stderr_of_the_moment(
    capsys: pytest.CaptureFixture[str],
) -> None:
    try:
        log_at("WARNING")
        logging.getLogger("connectors.http").info("not said")
        logging.getLogger("sync.store").warning("said once")
        log_at("WARNING")  # again: still one handler
        logging.getLogger("scoring.fit").warning("said too")
        said = capsys.readouterr().err
    finally:
        log_at("INFO")
    assert "not said" not in said and said.count("said once") == 1 and "said too" in said
    assert " WARNING sync.store: said once" in said
