"""Scoring settings: intent burst settings load with their defaults or say exactly what is wrong."""

from __future__ import annotations

from pathlib import Path

import pytest

from handoff.settings import SettingsError, load_settings


def _settings_file(tmp_path: Path, lines: str) -> Path:
    path = tmp_path / "settings.toml"
    path.write_text(f"[scoring]\n{lines}\n", encoding="utf-8")
    return path


def test_burst_settings_default_to_a_ten_day_gap_and_six_bins(tmp_path: Path) -> None:
    scoring = load_settings(_settings_file(tmp_path, ""), {}).scoring
    assert scoring.burst_gap_days == 10
    assert scoring.burst_bins_days == (4, 7, 14, 28, 45, 90)
    custom = load_settings(_settings_file(tmp_path, "burst_bins_days = [3, 9.5]"), {}).scoring
    assert custom.burst_bins_days == (3, 9.5)


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ("burst_gap_days = 0", "burst_gap_days must be a positive number, got 0"),
        (
            "burst_bins_days = [7, 4.5]",
            "burst_bins_days must be positive numbers rising from edge to edge, got [7, 4.5]",
        ),
        (
            "burst_bins_days = [0, 4]",
            "burst_bins_days must be positive numbers rising from edge to edge, got [0, 4]",
        ),
        (
            "burst_bins_days = [4, 4]",
            "burst_bins_days must be positive numbers rising from edge to edge, got [4, 4]",
        ),
        ("burst_bins_days = []", "burst_bins_days must be a non-empty list of numbers, got []"),
    ],
)
def test_bad_burst_settings_say_what_is_wrong(tmp_path: Path, line: str, problem: str) -> None:
    path = _settings_file(tmp_path, line)
    with pytest.raises(SettingsError) as raised:
        load_settings(path, {})
    assert raised.value.problems == (f"{path}: [scoring] {problem}",)
