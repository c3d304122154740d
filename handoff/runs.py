"""The sync run as the shell starts it: its settings gathered from `Settings`.

`sync` cannot read `handoff.settings`, so the shell hands the run a small frozen `RunConfig`.
"""

from __future__ import annotations

from handoff.settings import Settings
from sync.run import RunConfig
from sync.scoring_state import ScoringSetup

__all__ = ["run_config", "scoring_setup"]


def scoring_setup(settings: Settings) -> ScoringSetup:
    """What scoring reads from the settings."""
    return ScoringSetup(
        tiers=settings.tiers,
        model=settings.scoring,
        signals=tuple(settings.signals),
        fit=tuple(settings.fit),
        disqualifiers=tuple(settings.disqualifiers),
    )


def run_config(settings: Settings) -> RunConfig:
    """What one sync run needs from the settings."""
    return RunConfig(
        scoring=scoring_setup(settings),
        matching=settings.matching,
        min_score_change=settings.sync.min_score_change,
    )
