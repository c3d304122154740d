"""How hard the synthetic world is: its difficulty as named parameters, and presets of them.

The generator draws each account's hidden *fit* (how well it suits what we sell) and an in-market
process from it; a model only sees what that process leaves in the CRM. These parameters decide
how much of it the CRM reveals, so a benchmark's figures belong to a world, never to the model
alone. Presets: ``realistic`` (the default for the demo, tests and benchmarks: as hard as the
world before commit 8443ec1 made most of the propensity observable) and ``easy`` (the world from
8443ec1 on, kept so its figures stay comparable; the same seed gives the same org as then). Any
parameter can be overridden (``--world hidden_fit_sd=0.9``) to make worlds nobody has tuned on.

Fit = ``visible_fit_scale`` x (industry + company size + region effects) + hidden noise:

- ``hidden_fit_sd``: standard deviation of the part of fit no CRM field reveals (a champion, the
  tech stack, budget cycles). Firmographic effects span about 1.5; 0.6 hides about half of fit.
- ``visible_fit_scale``: how strongly industry, size and region shape fit (1: as in
  ``sandbox.vocab``; 0: the CRM's firmographic fields say nothing about fit).

An account goes in market in bursts, a Poisson process whose yearly rate is
``bursts_per_year`` x exp(``burst_rate_fit`` x fit + noise):

- ``bursts_per_year``: how often an average account starts researching a purchase.
- ``burst_rate_fit``: how much more often well-fitting accounts go in market.
- ``burst_rate_noise``: standard deviation of the hidden, account-specific part of that rate
  (buying habits no field records): the forecast no model can make.

Each burst emits intent activity (pricing pages, demo requests, webinars):

- ``intensity_sigma``: spread of a burst's log intensity; an intense burst emits more activity
  and converts more often.
- ``burst_activities``: activities an average burst leaves in the CRM against a fixed budget of
  background noise (blog reads, email opens): the intent signal-to-noise ratio.
- ``burst_spread_days``: mean days over which a burst's activities trickle in.

A burst opens a qualified opportunity with log-odds ``success_base`` + ``success_fit`` x fit +
``success_intensity`` x log intensity + ``customer_penalty`` for existing customers:

- ``success_base``: log-odds of an average burst converting (sets the base rate).
- ``success_fit``: how much more often well-fitting accounts' research turns into a deal.
- ``success_intensity``: how much more often intense research turns into a deal.
- ``customer_penalty``: existing customers' research more often stays with Customer Success.
- ``delay_min_days``, ``delay_mean_days``: days from a burst's start to its opportunity
  (the minimum, then exponential with this mean beyond it).
- ``noise_opps_per_year``: opportunities per account-year that no burst announced (referrals,
  a partner's deal, an inbound call), a rate growing with ``noise_opp_fit`` x fit.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from sandbox.truth import Process

__all__ = [
    "DEFAULT_PRESET",
    "PRESETS",
    "WorldError",
    "WorldParams",
    "parameter_names",
    "parse_overrides",
    "world_from",
]

DEFAULT_PRESET = "realistic"


class WorldError(ValueError):
    """An unknown preset or world parameter, or a value a parameter cannot take."""


@dataclass(frozen=True)
class WorldParams:
    """One world's difficulty; ``preset`` names the preset it started from (not a parameter)."""

    hidden_fit_sd: float
    visible_fit_scale: float
    bursts_per_year: float
    burst_rate_fit: float
    burst_rate_noise: float
    intensity_sigma: float
    burst_activities: float
    burst_spread_days: float
    success_base: float
    success_fit: float
    success_intensity: float
    customer_penalty: float
    delay_min_days: float
    delay_mean_days: float
    noise_opps_per_year: float
    noise_opp_fit: float
    preset: str = "custom"

    def __post_init__(self) -> None:
        for name, value in self.parameters().items():
            if not math.isfinite(value):
                raise WorldError(f"world parameter {name} must be a finite number, got {value}")
            if name in _NON_NEGATIVE and value < 0:
                raise WorldError(f"world parameter {name} must be >= 0, got {value}")
            if name in _POSITIVE and value <= 0:
                raise WorldError(f"world parameter {name} must be > 0, got {value}")

    def parameters(self) -> dict[str, float]:
        """Every parameter by name (the preset's name left out), JSON-ready."""
        return {k: v for k, v in asdict(self).items() if k != "preset"}

    @property
    def process(self) -> Process:
        """The latent in-market process these parameters describe (what the oracle knows)."""
        return Process(**{f.name: getattr(self, f.name) for f in fields(Process)})

    def overridden(self, overrides: Mapping[str, float]) -> WorldParams:
        """These parameters with some replaced; an unknown name is refused, naming the known."""
        unknown = sorted(set(overrides) - set(parameter_names()))
        if unknown:
            raise WorldError(
                f"unknown world parameter {', '.join(unknown)}; "
                f"known: {', '.join(parameter_names())}"
            )
        return replace(self, **{k: float(v) for k, v in overrides.items()})


# Spreads and rates that cannot be negative; means and counts that must be positive.
_NON_NEGATIVE = (
    "hidden_fit_sd",
    "visible_fit_scale",
    "burst_rate_noise",
    "intensity_sigma",
    "delay_min_days",
    "noise_opps_per_year",
)
_POSITIVE = ("bursts_per_year", "burst_activities", "burst_spread_days", "delay_mean_days")

_SHARED: dict[str, Any] = {
    "visible_fit_scale": 1.0,
    "bursts_per_year": 0.35,
    "burst_spread_days": 9.0,
    "success_base": -1.9,
    "success_intensity": 0.9,
    "customer_penalty": -1.2,
    "delay_min_days": 4.0,
    "delay_mean_days": 20.0,
    "noise_opps_per_year": 0.04,
    "noise_opp_fit": 0.4,
}
PRESETS: dict[str, WorldParams] = {
    # the values before commit 8443ec1: about half of fit hidden, noisy in-market rates
    "realistic": WorldParams(
        hidden_fit_sd=0.6,
        burst_rate_fit=0.8,
        burst_rate_noise=0.5,
        intensity_sigma=0.7,
        burst_activities=12.0,
        success_fit=1.3,
        preset="realistic",
        **_SHARED,
    ),
    # the values from commit 8443ec1 on: the latent propensity mostly observable
    "easy": WorldParams(
        hidden_fit_sd=0.15,
        burst_rate_fit=1.2,
        burst_rate_noise=0.1,
        intensity_sigma=0.5,
        burst_activities=14.0,
        success_fit=1.6,
        preset="easy",
        **_SHARED,
    ),
}


def parameter_names() -> tuple[str, ...]:
    """The names ``--world NAME=VALUE`` accepts, in declaration order."""
    return tuple(f.name for f in fields(WorldParams) if f.name != "preset")


def parse_overrides(assignments: Sequence[str]) -> dict[str, float]:
    """``["hidden_fit_sd=0.9", ...]`` as a mapping; a malformed one is refused with the reason."""
    overrides: dict[str, float] = {}
    for text in assignments:
        name, sign, value = text.partition("=")
        if not sign:
            raise WorldError(f"--world {text!r}: expected NAME=VALUE, e.g. hidden_fit_sd=0.9")
        try:
            overrides[name.strip()] = float(value)
        except ValueError:
            raise WorldError(f"--world {text!r}: {value.strip()!r} is not a number") from None
    return overrides


def world_from(
    preset: str = DEFAULT_PRESET, overrides: Mapping[str, float] | None = None
) -> WorldParams:
    """A preset's parameters with ``overrides`` applied; an unknown preset names the known ones."""
    if preset not in PRESETS:
        raise WorldError(f"unknown world preset {preset!r}; known: {', '.join(PRESETS)}")
    return PRESETS[preset].overridden(overrides or {})
