"""Tiers on the shared 0-100 scale: Nurture, SDR, AE (the MQA hand-off), or Disqualified (D1)."""

from __future__ import annotations

import numpy as np

from scoring.config import TierSettings

__all__ = ["DISQUALIFIED", "TIERS", "TIER_ORDER", "assign_tiers", "tier_label"]

DISQUALIFIED = "disqualified"
TIERS = ("nurture", "sdr", "ae")
TIER_ORDER = (*TIERS, DISQUALIFIED)  # how tiers are listed: up the funnel, then out of it


def assign_tiers(
    scores: np.ndarray, disqualified: np.ndarray, settings: TierSettings
) -> np.ndarray:
    """Tier key per account: thresholds from settings; a disqualified account is only that."""
    return np.select(
        [disqualified, scores >= settings.ae_min, scores >= settings.sdr_min],
        [DISQUALIFIED, "ae", "sdr"],
        default="nurture",
    )


def tier_label(key: str, settings: TierSettings) -> str:
    """The label the CRM shows for a tier key."""
    return str(getattr(settings, f"{key}_label"))
