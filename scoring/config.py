"""Scoring settings: tier thresholds, disqualifiers, the signal catalog, fit rules and the model.

Each model validates one settings section; `handoff.settings` composes them into one object.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from itertools import pairwise
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic_core import PydanticCustomError

__all__ = [
    "DEFAULT_DISQUALIFIERS",
    "DEFAULT_FIT",
    "DEFAULT_SIGNALS",
    "REP_ACTIVITIES",
    "SETTINGS_CONFIG",
    "SETTING_ERROR",
    "DisqualifierKind",
    "DisqualifierRule",
    "Disqualifiers",
    "FitField",
    "FitRule",
    "FitRules",
    "Intent",
    "ModelSettings",
    "NonEmptyStr",
    "SignalSpec",
    "Signals",
    "TierKey",
    "TierSettings",
    "setting_error",
    "unique_by",
]

SETTING_ERROR = "setting"
SETTINGS_CONFIG = ConfigDict(
    frozen=True, extra="forbid", allow_inf_nan=False, hide_input_in_errors=True
)

TierKey = Literal["nurture", "sdr", "ae"]
Intent = Literal["high", "medium", "passive"]
DisqualifierKind = Literal[
    "country_in",
    "region_in",
    "industry_in",
    "existing_customer",
    "competitor",
    "employees_below",
    "revenue_below",
]
FitField = Literal["industry", "country", "region", "employees", "revenue"]
NonEmptyStr = Annotated[str, Field(min_length=1)]

_CATEGORICAL_FIT: frozenset[str] = frozenset({"industry", "country", "region"})
# Activity the account's owner logs (Salesforce Task/Event types, HubSpot calls, emails, meetings,
# notes and tasks): a consequence of Sales working the account, not the buyer's intent, so it
# never scores; else an AE working a hand-off would move its score.
REP_ACTIVITIES: frozenset[str] = frozenset({"call", "email", "meeting", "note", "task"})


def setting_error(message: str, *at: str | int, **values: Any) -> PydanticCustomError:
    """An error whose message reads after the key it names; `at` is that key below the value."""
    return PydanticCustomError(SETTING_ERROR, message, {"at": at, **values})


def unique_by(key: str | None) -> AfterValidator:
    """Reject a list whose items (or the items' `key`) repeat, naming the repeat and the first."""

    def check(items: Sequence[Any]) -> Sequence[Any]:
        seen: dict[object, int] = {}
        for index, item in enumerate(items):
            value = item if key is None else getattr(item, key)
            if value in seen:
                at = (index,) if key is None else (index, key)
                raise setting_error(
                    "must be unique, got {got} again (first in #{first})",
                    *at,
                    got=json.dumps(value),
                    first=seen[value] + 1,
                )
            seen[value] = index
        return items

    return AfterValidator(check)


class TierSettings(BaseModel):
    """[tiers]: thresholds on the 0-100 score scale and the labels written to the CRM (D1)."""

    model_config = SETTINGS_CONFIG

    sdr_min: int = Field(41, gt=0, le=100)
    ae_min: int = Field(80, gt=0, le=100)
    nurture_label: NonEmptyStr = "Nurture"
    sdr_label: NonEmptyStr = "SDR"
    ae_label: NonEmptyStr = "AE"
    disqualified_label: NonEmptyStr = "Disqualified"

    @model_validator(mode="after")
    def _ordered(self) -> TierSettings:
        if self.sdr_min >= self.ae_min:
            raise setting_error(
                "must be below ae_min ({ae_min}), got {sdr_min}",
                "sdr_min",
                ae_min=self.ae_min,
                sdr_min=self.sdr_min,
            )
        return self


class DisqualifierRule(BaseModel):
    """[[disqualifiers]]: a deal-breaker that disqualifies an account, `name` as the reason (D2)."""

    model_config = SETTINGS_CONFIG

    name: NonEmptyStr
    kind: DisqualifierKind
    values: tuple[NonEmptyStr, ...] | None = Field(None, min_length=1)
    threshold: float | None = Field(None, gt=0)

    @model_validator(mode="after")
    def _fits_kind(self) -> DisqualifierRule:
        needed = _needed_key(self.kind)
        for key in ("values", "threshold"):
            given = getattr(self, key) is not None
            if key == needed and not given:
                raise setting_error('is required when kind = "{kind}"', key, kind=self.kind)
            if key != needed and given:
                raise setting_error('does not apply when kind = "{kind}"', key, kind=self.kind)
        return self


def _needed_key(kind: str) -> str | None:
    """The key a disqualifier kind reads: a list for `*_in`, a number for `*_below`, else none."""
    if kind.endswith("_in"):
        return "values"
    return "threshold" if kind.endswith("_below") else None


class SignalSpec(BaseModel):
    """[[signals]]: an activity type with its intent class, cold-start points and decay (D4, D5).

    `half_life_days` left out means [scoring] default_half_life_days; it is filled in on load.
    Rep activity (`REP_ACTIVITIES`) is refused: it is not the buyer's.
    """

    model_config = SETTINGS_CONFIG

    activity: NonEmptyStr
    label: NonEmptyStr
    intent: Intent
    points: float
    half_life_days: float | None = Field(None, gt=0)
    topic_from_activity: bool = False

    @field_validator("activity")
    @classmethod
    def _buyer_activity(cls, activity: str) -> str:
        if activity in REP_ACTIVITIES:
            raise setting_error(
                "must be the buyer's activity, got {got}: calls, emails, meetings, notes and "
                "tasks are logged by reps, so they never score",
                got=json.dumps(activity),
            )
        return activity


class FitRule(BaseModel):
    """[[fit]]: firmographic points, by category (`equals`) or numeric range `min` <= x < `max`."""

    model_config = SETTINGS_CONFIG

    name: NonEmptyStr
    field: FitField
    equals: tuple[NonEmptyStr, ...] | None = Field(None, min_length=1)
    min: float | None = None
    max: float | None = None
    points: float

    @model_validator(mode="after")
    def _fits_field(self) -> FitRule:
        categorical = self.field in _CATEGORICAL_FIT
        if categorical and self.equals is None:
            raise setting_error('is required when field = "{field}"', "equals", field=self.field)
        for key in ("min", "max") if categorical else ("equals",):
            if getattr(self, key) is not None:
                raise setting_error('does not apply when field = "{field}"', key, field=self.field)
        if not categorical and self.min is None and self.max is None:
            raise setting_error(
                'or max is required when field = "{field}"', "min", field=self.field
            )
        if self.min is not None and self.max is not None and self.min >= self.max:
            raise setting_error(
                "must be below max ({max}), got {min}",
                "min",
                max=_number(self.max),
                min=_number(self.min),
            )
        return self


def _number(value: float) -> str:
    """A number as written in TOML, without a needless `.0`."""
    return str(int(value)) if value.is_integer() else str(value)


def _rising(edges: tuple[float, ...]) -> tuple[float, ...]:
    """Refuse bin edges that are not positive or do not rise from one to the next."""
    if edges[0] <= 0 or any(low >= high for low, high in pairwise(edges)):
        shown = ", ".join(_number(edge) for edge in edges)
        raise setting_error(
            "must be positive numbers rising from edge to edge, got [{got}]", got=shown
        )
    return edges


_BinEdges = Annotated[tuple[float, ...], Field(min_length=1), AfterValidator(_rising)]


class ModelSettings(BaseModel):
    """[scoring]: which model scores, the decay, intent bursts, when and how the predictive model
    trains, and where on the 0-100 scale its odds land (the two odds ratios: see `scoring.model`).

    A burst is a run of high- and medium-intent activity without a pause longer than
    `burst_gap_days`; the predictive model learns points for when the latest one started (one
    bin per `burst_bins_days` upper edge, older counts as none) and for how many activities it
    holds (see `scoring.bursts`).

    A trained model replaces the current one only when it ranks the holdout better, its
    calibration error is at most `max_promotion_ece`, and its tiers convert in rising order among
    those holding at least `min_tier_rows` held-out rows (see `scoring.evaluation`).
    """

    model_config = SETTINGS_CONFIG

    model: Literal["auto", "rules", "predictive"] = "auto"
    default_half_life_days: float = Field(14, gt=0)
    memory_half_life_days: float = Field(180, gt=0)
    burst_gap_days: float = Field(10, gt=0)
    burst_bins_days: _BinEdges = (4.0, 7.0, 14.0, 28.0, 45.0, 90.0)
    min_training_accounts: int = Field(1000, gt=0)
    min_training_conversions: int = Field(120, gt=0)
    outcome_window_days: int = Field(90, gt=0)
    snapshot_every_days: int = Field(14, gt=0)
    holdout_days: int = Field(28, ge=0)
    max_promotion_ece: float = Field(0.02, gt=0, le=1)
    min_tier_rows: int = Field(100, gt=0)
    sdr_odds_ratio: float = Field(1.0, gt=0)
    ae_odds_ratio: float = Field(7.0, gt=0)

    @model_validator(mode="after")
    def _odds_ratios_ordered(self) -> ModelSettings:
        if self.sdr_odds_ratio >= self.ae_odds_ratio:
            raise setting_error(
                "must be below ae_odds_ratio ({ae}), got {sdr}",
                "sdr_odds_ratio",
                ae=_number(self.ae_odds_ratio),
                sdr=_number(self.sdr_odds_ratio),
            )
        return self


def _signal(
    activity: str, label: str, intent: Intent, points: float, *, topic: bool = False
) -> SignalSpec:
    """A default catalog entry; half-life comes from [scoring] default_half_life_days."""
    return SignalSpec(
        activity=activity, label=label, intent=intent, points=points, topic_from_activity=topic
    )


DEFAULT_SIGNALS: tuple[SignalSpec, ...] = (
    _signal("demo_request", "Requested a demo", "high", 25),
    _signal("pricing_page", "Visited pricing", "high", 15),
    _signal("trial_signup", "Started a trial", "high", 25),
    _signal("contact_sales", "Contacted sales", "high", 25),
    _signal("webinar", "Attended a webinar", "medium", 8, topic=True),
    _signal("case_study", "Read a case study", "medium", 6, topic=True),
    _signal("product_page", "Viewed a product page", "medium", 5),
    _signal("whitepaper", "Downloaded a whitepaper", "medium", 8, topic=True),
    _signal("blog_visit", "Read the blog", "passive", 1),
    _signal("email_open", "Opened a marketing email", "passive", 0.5),
    _signal("email_click", "Clicked a marketing email", "passive", 2),
)

DEFAULT_DISQUALIFIERS: tuple[DisqualifierRule, ...] = (
    DisqualifierRule(
        name="Restricted country", kind="country_in", values=("RU", "IR", "KP", "CU", "SY")
    ),
    DisqualifierRule(name="Existing customer", kind="existing_customer"),
    DisqualifierRule(name="Competitor", kind="competitor"),
    DisqualifierRule(name="Fewer than 10 employees", kind="employees_below", threshold=10),
)

DEFAULT_FIT: tuple[FitRule, ...] = (
    FitRule(name="Industry: Software", field="industry", equals=("Software",), points=8),
    FitRule(name="Industry: Fintech", field="industry", equals=("Fintech",), points=8),
    FitRule(name="Industry: Government", field="industry", equals=("Government",), points=-10),
    FitRule(name="Industry: Nonprofit", field="industry", equals=("Nonprofit",), points=-10),
    FitRule(name="Size: 200-5,000 employees", field="employees", min=200, max=5000, points=10),
    FitRule(name="Size: 5,000+ employees", field="employees", min=5000, points=5),
    FitRule(name="Revenue: $50M+", field="revenue", min=50_000_000, points=5),
)

Signals = Annotated[tuple[SignalSpec, ...], unique_by("activity")]
Disqualifiers = Annotated[tuple[DisqualifierRule, ...], unique_by("name")]
FitRules = Annotated[tuple[FitRule, ...], unique_by("name")]
