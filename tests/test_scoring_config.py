"""Scoring settings: intent burst and promotion settings load with their defaults or say exactly
what is wrong; rep activity cannot be made an intent signal."""

from __future__ import annotations

from pathlib import Path

import pytest

from handoff.settings import SettingsError, load_settings


def _settings_file(tmp_path: Path, lines: str) -> Path:
    path = tmp_path / "settings.toml"
    path.write_text(f"[scoring]\n{lines}\n", encoding="utf-8")
    return path


def test_promotion_settings_default_to_a_two_point_calibration_bound_and_100_tier_rows(
    tmp_path: Path,
) -> None:
    scoring = load_settings(_settings_file(tmp_path, ""), {}).scoring
    assert (scoring.max_promotion_ece, scoring.min_tier_rows) == (0.02, 100)
    lines = "max_promotion_ece = 0.05\nmin_tier_rows = 30"
    custom = load_settings(_settings_file(tmp_path, lines), {}).scoring
    assert (custom.max_promotion_ece, custom.min_tier_rows) == (0.05, 30)


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
        (
            "max_promotion_ece = 0",
            "max_promotion_ece must be a number above 0 and at most 1, got 0",
        ),
        (
            "max_promotion_ece = 1.5",
            "max_promotion_ece must be a number above 0 and at most 1, got 1.5",
        ),
        ("min_tier_rows = 0", "min_tier_rows must be a positive integer, got 0"),
        ('min_tier_rows = "many"', 'min_tier_rows must be a positive integer, got "many"'),
    ],
)
def test_bad_scoring_settings_say_what_is_wrong(tmp_path: Path, line: str, problem: str) -> None:
    path = _settings_file(tmp_path, line)
    with pytest.raises(SettingsError) as raised:
        load_settings(path, {})
    assert raised.value.problems == (f"{path}: [scoring] {problem}",)


@pytest.mark.parametrize("activity", ["call", "email", "meeting", "note", "task"])
def test_rep_activity_cannot_be_an_intent_signal(tmp_path: Path, activity: str) -> None:
    path = tmp_path / "settings.toml"
    path.write_text(
        f'[[signals]]\nactivity = "{activity}"\nlabel = "Met with a rep"\nintent = "medium"\n'
        "points = 10\n",
        encoding="utf-8",
    )
    with pytest.raises(SettingsError) as raised:
        load_settings(path, {})
    assert raised.value.problems == (
        f'{path}: [[signals]] #1 (activity "{activity}") activity must be the buyer\'s activity, '
        f'got "{activity}": calls, emails, meetings, notes and tasks are logged by reps, so they '
        "never score",
    )
