"""The two scoring models: cold-start rules from settings, and a scorecard learned from history.

`RulesModel` (D5) adds each signal's settings points per decayed occurrence and each matching fit
rule's points. `PredictiveModel` (D6) is a regularised logistic regression on the same decayed
signals, a long memory of intent per class, the latest intent burst, earlier opportunities and
firmographic levels, rewritten as a scorecard: the log-odds map linearly onto the 0-100 scale so
that [tiers] sdr_min sits at `sdr_odds_ratio` times the org's average odds and ae_min at
`ae_odds_ratio` times them (points to double the odds: (ae_min - sdr_min) * ln 2 / ln(ae / sdr
ratio), ~14 by default).
Firmographic levels are centred on the average account, so "Industry: Government" can be negative.
Size bands are not learned one by one: their points follow a parabola in log employees (a fine
band's few conversions would make its own points noisy), and an unknown size has its own points.
The latest burst gives points for when it started (one bin per `burst_bins_days` edge) and, per
bin, points per log1p of its activities: how many a burst holds depends on how long it has grown.
Models save as JSON, never pickle, and carry their version, metrics and changelog.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from itertools import pairwise
from typing import TYPE_CHECKING, Any, Self

import numpy as np
import polars as pl

from scoring.bursts import burst_bins
from scoring.config import FitRule, ModelSettings, SignalSpec, TierSettings
from scoring.evaluation import ScoringModel, changelog, evaluate, promotion_refusals
from scoring.explain import Explanation, explain
from scoring.features import Examples, Snapshot
from scoring.fit import LEVEL_GROUPS, firmographic_levels, fit_rule_matches, size_band_centres
from scoring.scorecard import SCORE_MAX, Contributions, Scorecard, Term
from scoring.signals import INTENTS, SignalCatalog

if TYPE_CHECKING:  # sklearn costs most of a second to import: only fitting loads it
    from sklearn.linear_model import LogisticRegression

__all__ = [
    "FORMAT_VERSION",
    "PredictiveModel",
    "RulesModel",
    "catalog_from_dict",
    "catalog_to_dict",
    "load_model",
]

FORMAT_VERSION = 2
# L2 strength (sklearn's C): mild, so points stay stable from one monthly retrain to the next.
_REGULARISATION = 0.1
_MEMORY_LABELS = {
    "high": "High-intent activity",
    "medium": "Medium-intent activity",
    "passive": "Passive activity",
}
_LEVEL_KEYS = tuple(f"level:{group}" for group in LEVEL_GROUPS)
# Size curve inputs are log10 employees minus this (1,000 employees): keeps the linear and the
# squared column from being near-collinear.
_SIZE_CENTRE = 3.0


def _check_catalog(snapshot: Snapshot, catalog: SignalCatalog) -> None:
    """Refuse a snapshot decayed with another catalog than the model's."""
    if snapshot.totals.catalog != catalog:
        raise ValueError("the snapshot was computed with another signal catalog than the model's")


def _explain(
    model: ScoringModel, snapshot: Snapshot, rows: np.ndarray, counts: np.ndarray | None
) -> list[Explanation]:
    """Explanations of `rows` under `model`."""
    return explain(model.contributions(snapshot), snapshot, rows, model.version, counts)


@dataclass(frozen=True)
class RulesModel:
    """Cold-start scoring: points straight from settings, base 0."""

    catalog: SignalCatalog
    fit_rules: tuple[FitRule, ...]

    @property
    def scorecard(self) -> Scorecard:
        """Signal points per decayed occurrence, then the fit rules."""
        signals = [Term(f"signal:{s.activity}", s.label, s.points) for s in self.catalog.signals]
        rules = [Term(f"flag:rule:{i}", r.name, r.points) for i, r in enumerate(self.fit_rules)]
        return Scorecard(0.0, (*signals, *rules))

    @property
    def version(self) -> str:
        """`rules-` and a digest of the settings it scores with."""
        return f"rules-{_digest(self.to_dict())}"

    def contributions(self, snapshot: Snapshot) -> Contributions:
        """Points per account and term."""
        _check_catalog(snapshot, self.catalog)
        matches = fit_rule_matches(snapshot.accounts, self.fit_rules).astype(np.float32)
        numeric = [*snapshot.totals.signals.T, *matches.T]
        return self.scorecard.contributions(numeric, pl.DataFrame())

    def reference_points(self) -> dict[str, float]:
        """Points of one fresh occurrence of each signal and of each fit rule, by label."""
        return _reference_points(self.scorecard)

    def explain(
        self, snapshot: Snapshot, rows: np.ndarray, counts: np.ndarray | None = None
    ) -> list[Explanation]:
        """Plain-language explanations of `rows`."""
        return _explain(self, snapshot, rows, counts)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready form of the model."""
        return {
            "format": FORMAT_VERSION,
            "kind": "rules",
            "catalog": catalog_to_dict(self.catalog),
            "fit_rules": [r.model_dump() for r in self.fit_rules],
        }

    def to_json(self) -> str:
        """The model as JSON text."""
        return json.dumps(self.to_dict(), indent=1, ensure_ascii=False)


class PredictiveModel:
    """A scorecard learned by regularised logistic regression from point-in-time history."""

    def __init__(
        self, catalog: SignalCatalog, settings: ModelSettings, tiers: TierSettings
    ) -> None:
        self.catalog = catalog
        self.settings = settings
        self.tiers = tiers

    def fit(
        self,
        train: Examples,
        *,
        trained_on: datetime,
        holdout: Examples | None = None,
        previous: ScoringModel | None = None,
    ) -> Self:
        """Learn the scorecard from `train`'s eligible rows and version it by `trained_on`; with
        a `holdout`, measure it there, against `previous` too; write the changelog, which says
        why the model is kept aside if it may not replace `previous`."""
        levels = [firmographic_levels(s.accounts) for s in train.snapshots]
        table = _level_table(levels, train.eligible)
        self.levels_ = [known for known, _ in table]
        design = np.vstack(
            [
                self._design(s, level)[eligible]
                for s, level, eligible in zip(train.snapshots, levels, train.eligible, strict=True)
            ]
        )
        labels = train.stacked_labels()
        from sklearn.linear_model import LogisticRegression

        regression = LogisticRegression(C=_REGULARISATION, max_iter=5000).fit(design, labels)
        self.base_rate_ = float(labels.mean())
        self.factor_, self.offset_ = _scale(self.base_rate_, self.settings, self.tiers)
        self.scorecard_ = self._scorecard(regression, [shares for _, shares in table])
        self.trained_on_ = trained_on.isoformat()
        self.version_ = f"{trained_on:%Y%m%d}-{_digest(self._learned())}"
        self.metrics_ = {} if holdout is None else evaluate(self, holdout, self.tiers, previous)
        self.changelog_ = changelog(previous, self, self.refusals())
        return self

    @property
    def version(self) -> str:
        """Training date and a digest of the learned scorecard."""
        return self.version_

    def refusals(self) -> tuple[str, ...]:
        """Why this model may not replace the one it was measured against (empty: it may, or
        it was measured on no holdout)."""
        if not self.metrics_:
            return ()
        return promotion_refusals(self.metrics_, self.settings, self.tiers)

    def contributions(self, snapshot: Snapshot) -> Contributions:
        """Points per account and term."""
        _check_catalog(snapshot, self.catalog)
        levels = firmographic_levels(snapshot.accounts)
        renamed = levels.rename(dict(zip(LEVEL_GROUPS, _LEVEL_KEYS, strict=True)))
        inputs = _numeric_inputs(snapshot, self.settings.burst_bins_days)
        return self.scorecard_.contributions(inputs, renamed)

    def decision_function(self, snapshot: Snapshot) -> np.ndarray:
        """Unbounded scores (base plus points before fitting into 0-100), for ranking."""
        return self.contributions(snapshot).raw

    def predict_proba(self, snapshot: Snapshot) -> np.ndarray:
        """Per account, the chance of a qualified opportunity within the outcome window."""
        return _probability(self.decision_function(snapshot), self.factor_, self.offset_)

    def score(self, snapshot: Snapshot) -> np.ndarray:
        """Whole-number scores 0-100."""
        return self.contributions(snapshot).rounded()

    def reference_points(self) -> dict[str, float]:
        """Points of one fresh occurrence, one earlier opportunity, or each level, by label."""
        return _reference_points(self.scorecard_)

    def explain(
        self, snapshot: Snapshot, rows: np.ndarray, counts: np.ndarray | None = None
    ) -> list[Explanation]:
        """Plain-language explanations of `rows`."""
        return _explain(self, snapshot, rows, counts)

    def _design(self, snapshot: Snapshot, levels: pl.DataFrame) -> np.ndarray:
        """The regression's inputs: transformed numbers, then each level group's columns."""
        edges = self.settings.burst_bins_days
        numeric = zip(
            _numeric_terms(self.catalog, edges), _numeric_inputs(snapshot, edges), strict=True
        )
        transformed = [term.transformed(column) for term, column in numeric]
        encoded = [
            _level_columns(group, levels[group].to_numpy(), known)
            for group, known in zip(LEVEL_GROUPS, self.levels_, strict=True)
        ]
        return np.hstack([np.column_stack(transformed), *encoded])

    def _scorecard(self, regression: LogisticRegression, shares: list[np.ndarray]) -> Scorecard:
        """The regression rewritten in points, levels centred on the average training account.

        The base is the score of an average account without intent or earlier opportunities;
        should the odds ratios put it off the 0-100 scale, a constant term carries the excess.
        """
        coef = regression.coef_[0]
        numeric = _numeric_terms(self.catalog, self.settings.burst_bins_days)
        terms = [
            Term(t.key, t.label, float(self.factor_ * c), t.transform)
            for t, c in zip(numeric, coef[: len(numeric)], strict=True)
        ]
        start, centre = len(numeric), 0.0
        for group, key, known, share in zip(
            LEVEL_GROUPS, _LEVEL_KEYS, self.levels_, shares, strict=True
        ):
            # Each known level's own regression inputs turn the coefficients into its log-odds.
            inputs = _level_columns(group, np.array(known), known).astype(np.float64)
            width = inputs.shape[1]
            beta = inputs @ coef[start : start + width]
            mean = float(share @ beta)
            points = tuple(
                (k, float(self.factor_ * (b - mean))) for k, b in zip(known, beta, strict=True)
            )
            terms.append(Term(key, key.split(":")[1].capitalize(), levels=points))
            start, centre = start + width, centre + mean
        base = self.offset_ + self.factor_ * (float(regression.intercept_[0]) + centre)
        on_scale = float(np.clip(base, 0.0, SCORE_MAX))
        if on_scale != base:
            terms.append(Term("constant", "Typical account without intent", base - on_scale))
        return Scorecard(on_scale, tuple(terms))

    def _learned(self) -> dict[str, Any]:
        """Everything learned, JSON-ready."""
        return {
            "levels": [list(k) for k in self.levels_],
            "base_rate": self.base_rate_,
            "factor": self.factor_,
            "offset": self.offset_,
            "scorecard": self.scorecard_.to_dict(),
        }

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready form of the model: settings, scorecard, metrics and changelog."""
        return {
            "format": FORMAT_VERSION,
            "kind": "predictive",
            "version": self.version_,
            "trained_on": self.trained_on_,
            "catalog": catalog_to_dict(self.catalog),
            "settings": self.settings.model_dump(),
            "tiers": self.tiers.model_dump(),
            **self._learned(),
            "metrics": self.metrics_,
            "changelog": list(self.changelog_),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PredictiveModel:
        """The model `to_dict` wrote."""
        model = cls(
            catalog_from_dict(data["catalog"]),
            ModelSettings.model_validate(data["settings"]),
            TierSettings.model_validate(data["tiers"]),
        )
        model.levels_ = [tuple(k) for k in data["levels"]]
        model.base_rate_ = float(data["base_rate"])
        model.factor_, model.offset_ = float(data["factor"]), float(data["offset"])
        model.scorecard_ = Scorecard.from_dict(data["scorecard"])
        model.trained_on_, model.version_ = data["trained_on"], data["version"]
        model.metrics_, model.changelog_ = data["metrics"], tuple(data["changelog"])
        return model

    def to_json(self) -> str:
        """The model as JSON text."""
        return json.dumps(self.to_dict(), indent=1, ensure_ascii=False)


def load_model(text: str) -> RulesModel | PredictiveModel:
    """A model from the JSON a model's `to_dict` wrote."""
    data = json.loads(text)
    if data.get("format") != FORMAT_VERSION:
        raise ValueError(
            f"model format {data.get('format')!r}; this version reads {FORMAT_VERSION}"
        )
    if data["kind"] == "rules":
        rules = tuple(FitRule.model_validate(r) for r in data["fit_rules"])
        return RulesModel(catalog_from_dict(data["catalog"]), rules)
    return PredictiveModel.from_dict(data)


def catalog_to_dict(catalog: SignalCatalog) -> dict[str, Any]:
    """A JSON-ready form of a catalog."""
    return {
        "signals": [s.model_dump() for s in catalog.signals],
        "topic_half_life_days": catalog.topic_half_life_days,
        "memory_half_life_days": catalog.memory_half_life_days,
        "burst_gap_days": catalog.burst_gap_days,
    }


def catalog_from_dict(data: dict[str, Any]) -> SignalCatalog:
    """The catalog `catalog_to_dict` wrote."""
    return SignalCatalog(
        tuple(SignalSpec.model_validate(s) for s in data["signals"]),
        float(data["topic_half_life_days"]),
        float(data["memory_half_life_days"]),
        float(data["burst_gap_days"]),
    )


def _numeric_terms(catalog: SignalCatalog, edges_days: tuple[float, ...]) -> list[Term]:
    """The predictive model's numeric terms, in the column order of `_numeric_inputs`."""
    return [
        *(Term(f"signal:{s.activity}", s.label, transform="log1p") for s in catalog.signals),
        *(
            Term(f"memory:{i}", f"{_MEMORY_LABELS[i]} over recent months", transform="log1p")
            for i in INTENTS
        ),
        *_burst_terms(edges_days),
        Term("history:opportunities", "Earlier opportunities", transform="log1p"),
        Term("flag:is_customer", "Existing customer"),
    ]


def _burst_terms(edges_days: tuple[float, ...]) -> list[Term]:
    """Per start bin of the latest burst, a term for having started then and one for its size."""
    terms = []
    for low, high in pairwise((0.0, *edges_days)):
        days = f"{low:g}-{high:g}"
        started = f"intent burst started {days} days ago"
        terms.append(Term(f"burst:start:{days}", started.capitalize()))
        terms.append(Term(f"burst:size:{days}", f"Activities of an {started}", transform="log1p"))
    return terms


def _numeric_inputs(snapshot: Snapshot, edges_days: tuple[float, ...]) -> list[np.ndarray]:
    """Columns of decayed signals, intent memory, the latest burst, earlier opportunities and the
    customer flag."""
    customer = snapshot.accounts["is_customer"].fill_null(False).to_numpy()
    totals = snapshot.totals
    return [
        *totals.signals.T,
        *totals.memory.T,
        *_burst_inputs(totals.burst_age_days, totals.burst_size, edges_days),
        snapshot.opportunities.astype(np.float32),
        customer.astype(np.float32),
    ]


def _burst_inputs(
    age_days: np.ndarray, size: np.ndarray, edges_days: tuple[float, ...]
) -> list[np.ndarray]:
    """Per start bin, whether the latest burst started then and, if so, its size (else 0)."""
    found = burst_bins(age_days, edges_days)
    columns = []
    for k in range(len(edges_days)):
        started = found == k
        columns.append(started.astype(np.float32))
        columns.append(np.where(started, size, 0).astype(np.float32))
    return columns


def _level_table(
    levels: list[pl.DataFrame], eligible: tuple[np.ndarray, ...]
) -> list[tuple[tuple[str, ...], np.ndarray]]:
    """Per level group, its known levels and their shares of eligible training rows: the levels
    seen (sorted), or for size every band, since its curve gives points to unseen bands too."""
    table = []
    for group in LEVEL_GROUPS:
        seen = np.concatenate(
            [lv[group].to_numpy()[e] for lv, e in zip(levels, eligible, strict=True)]
        )
        known = tuple(size_band_centres()) if group == "size" else tuple(np.unique(seen))
        counts = (seen[:, None] == np.array(known)[None, :]).sum(axis=0)
        table.append((tuple(str(k) for k in known), counts / counts.sum()))
    return table


def _level_columns(group: str, labels: np.ndarray, known: tuple[str, ...]) -> np.ndarray:
    """A group's regression columns: one per known level, or for size the curve's three
    (log10 employees, its square, size unknown)."""
    if group != "size":
        return (labels[:, None] == np.array(known)[None, :]).astype(np.float32)
    centres = {k: np.nan if c is None else c for k, c in size_band_centres().items()}
    log_size = np.array([centres[str(label)] for label in labels]) - _SIZE_CENTRE
    unknown = np.isnan(log_size)
    log_size = np.where(unknown, 0.0, log_size)
    return np.column_stack([log_size, log_size**2, unknown]).astype(np.float32)


def _scale(base_rate: float, settings: ModelSettings, tiers: TierSettings) -> tuple[float, float]:
    """Points per unit of log-odds and the score at log-odds 0, from the two anchors."""
    base_log_odds = np.log(base_rate / (1 - base_rate))
    sdr = base_log_odds + np.log(settings.sdr_odds_ratio)
    ae = base_log_odds + np.log(settings.ae_odds_ratio)
    factor = (tiers.ae_min - tiers.sdr_min) / (ae - sdr)
    return float(factor), float(tiers.ae_min - factor * ae)


def _probability(raw: np.ndarray, factor: float, offset: float) -> np.ndarray:
    """The chance behind an unbounded score."""
    return 1 / (1 + np.exp(-(raw - offset) / factor))


def _reference_points(card: Scorecard) -> dict[str, float]:
    """Label -> points of one unit of every term (the changelog compares these)."""
    return {label: p for term in card.terms for label, p in term.unit_points().items()}


def _digest(data: dict[str, Any]) -> str:
    """Eight hex digits that change whenever `data` does."""
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:8]
