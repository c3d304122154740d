"""Activities, opportunities and dispositions, generated from a latent in-market process.

Each account goes in market in bursts (a Poisson process whose rate grows with hidden fit). A burst
emits intent activity (mostly high and medium intent) for a couple of weeks and, with a probability
that grows with fit and burst intensity, opens a qualified opportunity a few weeks later. On top sit
noise: passive background activity unrelated to buying, rep outreach, and opportunities that no
burst announced. ``truth.GroundTruth.oracle_probability`` is the exact forecast under this process.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl
from numpy.polynomial.hermite_e import hermegauss

from sandbox.draw import gather, nullable, pick
from sandbox.reps import owners_in_region
from sandbox.truth import DAY, Process
from sandbox.vocab import ACTIVITY_TYPES, PRODUCT_LINES, TOPICS

__all__ = ["HISTORY_DAYS", "Engagement", "make_engagement"]

HISTORY_DAYS = 456
WARM_UP_DAYS = 60
_KEYS = [t.key for t in ACTIVITY_TYPES]
_HAS_TOPIC = np.array([t.has_topic for t in ACTIVITY_TYPES])
_BURST_MIX = {
    "pricing_page": 15,
    "demo_request": 8,
    "trial_signup": 6,
    "contact_sales": 6,
    "product_page": 15,
    "webinar": 10,
    "case_study": 8,
    "whitepaper": 12,
    "blog_visit": 10,
    "email_click": 10,
}
_BACKGROUND_MIX = {
    "blog_visit": 35,
    "email_open": 35,
    "email_click": 10,
    "product_page": 8,
    "webinar": 3,
    "case_study": 3,
    "whitepaper": 3,
    "pricing_page": 2,
    "demo_request": 0.5,
    "contact_sales": 0.5,
}
_TOPIC_PRODUCT = {"security": 1, "compliance": 1, "analytics": 2, "ai": 2, "integrations": 3}
_OPEN_STAGES = ("Qualification", "Needs Analysis", "Proposal", "Negotiation")


@dataclass(frozen=True)
class Engagement:
    """Generated engagement records plus the hidden per-account process and bursts."""

    activities: pl.DataFrame
    opportunities: pl.DataFrame
    dispositions: pl.DataFrame
    bursts: pl.DataFrame
    account_truth: pl.DataFrame


def make_engagement(
    rng: np.random.Generator,
    accounts: pl.DataFrame,
    people: pl.DataFrame,
    users: pl.DataFrame,
    end_s: int,
    activities_per_account: float,
    process: Process,
) -> Engagement:
    """Draw the latent process, then everything it and the noise around it leave in the CRM."""
    truth = _account_process(rng, accounts, process)
    bursts = _bursts(rng, truth, end_s, process)
    opportunities, bursts = _opportunities(rng, accounts, users, truth, bursts, end_s, process)
    budget = int(activities_per_account * accounts.height)
    activities = _activities(
        rng, accounts, people, users, bursts, opportunities, end_s, budget, process
    )
    dispositions = _dispositions(rng, accounts, bursts, end_s)
    return Engagement(activities, opportunities, dispositions, bursts, truth)


def _account_process(
    rng: np.random.Generator, accounts: pl.DataFrame, process: Process
) -> pl.DataFrame:
    """Per account: burst rate, mean burst success and the rate of unannounced opportunities."""
    fit = accounts["fit"].to_numpy()
    customer = accounts["is_customer"].to_numpy().astype(np.float64)
    live = (accounts["duplicate_of"].is_null() & ~accounts["is_competitor"]).to_numpy()
    noise = rng.normal(0, process.burst_rate_noise, accounts.height)
    rate = process.bursts_per_year / 365 * np.exp(process.burst_rate_fit * fit + noise) * live
    nodes, weights = hermegauss(16)
    logits = process.success_logit(
        fit[:, None], process.intensity_sigma * nodes[None, :], customer[:, None]
    )
    mean_success = (1 / (1 + np.exp(-logits))) @ (weights / weights.sum()) * live
    hazard = process.noise_opps_per_year / 365 * np.exp(process.noise_opp_fit * fit) * live
    return accounts.select(
        "account_id",
        "fit",
        "duplicate_of",
        "preferred_topic",
        "is_competitor",
        "is_customer",
        burst_rate=pl.Series(rate),
        mean_success=pl.Series(mean_success),
        opp_hazard=pl.Series(hazard),
    )


def _bursts(
    rng: np.random.Generator, truth: pl.DataFrame, end_s: int, process: Process
) -> pl.DataFrame:
    """Burst starts over the history plus a warm-up, with intensity, topic and success chance."""
    span_days = HISTORY_DAYS + WARM_UP_DAYS
    counts = rng.poisson(truth["burst_rate"].to_numpy() * span_days)
    account = np.repeat(np.arange(truth.height), counts)
    n = len(account)
    log_intensity = rng.normal(0, process.intensity_sigma, n)
    logit = process.success_logit(
        truth["fit"].to_numpy()[account], log_intensity, truth["is_customer"].to_numpy()[account]
    )
    preferred = truth["preferred_topic"].to_numpy()[account]
    random_topic = np.array(TOPICS)[rng.integers(0, len(TOPICS), n)]
    return pl.DataFrame(
        {
            "account_id": pl.Series(account, dtype=pl.UInt32),
            "start": (end_s - rng.uniform(0, span_days, n) * DAY).astype(np.int64),
            "intensity": np.exp(log_intensity),
            "success_p": 1 / (1 + np.exp(-logit)),
            "topic": np.where(rng.random(n) < 0.7, preferred, random_topic),
        }
    )


def _opportunities(
    rng: np.random.Generator,
    accounts: pl.DataFrame,
    users: pl.DataFrame,
    truth: pl.DataFrame,
    bursts: pl.DataFrame,
    end_s: int,
    process: Process,
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Opportunities from successful bursts and unannounced ones; bursts learn their opportunity."""
    n_b = bursts.height
    success = rng.random(n_b) < bursts["success_p"].to_numpy()
    delay = (process.delay_min_days + rng.exponential(process.delay_mean_days, n_b)) * DAY
    opened = bursts["start"].to_numpy() + delay.astype(np.int64)
    from_burst = np.flatnonzero(success & (opened <= end_s))
    noise_counts = rng.poisson(truth["opp_hazard"].to_numpy() * HISTORY_DAYS)
    noise_account = np.repeat(np.arange(truth.height), noise_counts)
    noise_opened = end_s - (rng.uniform(0, HISTORY_DAYS, len(noise_account)) * DAY).astype(np.int64)
    account = np.concatenate([bursts["account_id"].to_numpy()[from_burst], noise_account])
    noise_topic = np.array(TOPICS)[rng.integers(0, len(TOPICS), len(noise_account))]
    topic = np.concatenate([bursts["topic"].to_numpy()[from_burst], noise_topic])
    opened_all = np.concatenate([opened[from_burst], noise_opened])
    rank = np.argsort(np.argsort(opened_all, kind="stable"), kind="stable")
    opps = _opportunity_records(rng, accounts, users, account, opened_all, topic, end_s)
    opps = opps.with_columns(opportunity_id=pl.Series(rank, dtype=pl.UInt32)).sort("opportunity_id")
    burst_opp = np.full(n_b, -1, dtype=np.int64)
    burst_opp[from_burst] = rank[: len(from_burst)]
    bursts = bursts.with_columns(opportunity_id=nullable(burst_opp))
    return opps, bursts


def _opportunity_records(
    rng: np.random.Generator,
    accounts: pl.DataFrame,
    users: pl.DataFrame,
    account: np.ndarray,
    opened: np.ndarray,
    topic: np.ndarray,
    end_s: int,
) -> pl.DataFrame:
    """Amounts, product lines, stages and owners of opportunities opened at ``opened``."""
    n = len(account)
    acc = accounts[account]
    fit = acc["fit"].to_numpy()
    duration = ((20 + rng.exponential(60, n)) * DAY).astype(np.int64)
    close = opened + duration
    closed = close <= end_s
    won = closed & (rng.random(n) < 1 / (1 + np.exp(0.6 - 0.8 * fit)))
    progress = np.clip((end_s - opened) / duration, 0, 0.999)
    stage = np.where(
        closed,
        np.where(won, "Closed Won", "Closed Lost"),
        np.array(_OPEN_STAGES)[(progress * len(_OPEN_STAGES)).astype(np.int64)],
    )
    size = np.maximum(acc["employees_true"].to_numpy(), 1) / 100
    amount = np.round(rng.lognormal(np.log(20_000) + 0.4 * np.log(size), 0.6), -2)
    product = np.vectorize(_TOPIC_PRODUCT.get)(topic) * (rng.random(n) < 0.6)
    owner = np.where(
        acc["owner_id"].to_numpy() == 0,
        owners_in_region(rng, users, "ae", acc["region"]),
        acc["owner_id"].to_numpy(),
    )
    return pl.DataFrame(
        {
            "account_id": pl.Series(account, dtype=pl.UInt32),
            "name": acc["name"] + " - " + gather(PRODUCT_LINES, product),
            "product_line": gather(PRODUCT_LINES, product),
            "stage": stage,
            "amount": amount,
            "opened_s": opened,
            "close_s": close,
            "is_closed": closed,
            "is_won": won,
            "owner_id": pl.Series(owner, dtype=pl.UInt32),
            "modified_s": np.minimum(
                np.where(closed, close, opened + (end_s - opened) // 2), end_s
            ),
        }
    )


def _activities(
    rng: np.random.Generator,
    accounts: pl.DataFrame,
    people: pl.DataFrame,
    users: pl.DataFrame,
    bursts: pl.DataFrame,
    opportunities: pl.DataFrame,
    end_s: int,
    budget: int,
    process: Process,
) -> pl.DataFrame:
    """Burst intent, rep outreach, background noise and orphan noise, sorted by time."""
    start = end_s - HISTORY_DAYS * DAY
    in_history = (pl.col("occurred_s") >= start) & (pl.col("occurred_s") <= end_s)
    frame = pl.concat(
        [
            _burst_activity(rng, bursts, process),
            _rep_activity(rng, accounts, bursts, opportunities, end_s),
        ]
    ).filter(in_history)
    background = max(int(0.2 * budget), budget - frame.height - int(0.03 * budget))
    frame = pl.concat([frame, _background_activity(rng, accounts, background, end_s)])
    frame = _attach_people(rng, frame, people)
    frame = pl.concat([frame, _orphan_activity(rng, people, int(0.03 * budget), end_s)])
    frame = frame.sort("occurred_s").with_row_index("activity_id")
    return frame.with_columns(
        type=pl.lit(pl.Series(_KEYS)).gather(pl.col("type_idx")).cast(pl.Enum(_KEYS)),
        topic=pl.when(pl.col("topic_idx") >= 0)
        .then(pl.lit(pl.Series(TOPICS)).gather(pl.col("topic_idx").clip(0)))
        .cast(pl.Enum(list(TOPICS))),
        modified_s=pl.col("occurred_s") + 60,
    ).drop("type_idx", "topic_idx", "true_account_id", "rep_logged")


def _typed(rng: np.random.Generator, mix: dict[str, float], n: int) -> np.ndarray:
    """Activity type indices drawn from a mix of type keys and weights."""
    keys = list(mix)
    drawn = pick(rng, len(keys), n, list(mix.values()))
    return np.array([_KEYS.index(k) for k in keys])[drawn]


def _topic_index(topics: pl.Series) -> np.ndarray:
    """Topic names as indices into ``TOPICS``."""
    return topics.replace_strict(TOPICS, list(range(len(TOPICS))), return_dtype=pl.Int8).to_numpy()


def _topics(rng: np.random.Generator, type_idx: np.ndarray, preferred: np.ndarray) -> np.ndarray:
    """Topic indices for the types that carry one (mostly the preferred topic), else -1."""
    random_topic = rng.integers(0, len(TOPICS), len(type_idx))
    topic = np.where(rng.random(len(type_idx)) < 0.8, preferred, random_topic)
    return np.where(_HAS_TOPIC[type_idx], topic, -1).astype(np.int8)


def _frame(
    account: np.ndarray | None,
    when: np.ndarray,
    type_idx: np.ndarray,
    topic: np.ndarray,
    owner: np.ndarray | None,
    rep_logged: bool,
) -> pl.DataFrame:
    """One block of activities in the common column layout (None: a column of nulls)."""
    n = len(when)
    return pl.DataFrame(
        {
            "true_account_id": _ids(account, n),
            "occurred_s": when.astype(np.int64),
            "type_idx": pl.Series(type_idx, dtype=pl.UInt8),
            "topic_idx": pl.Series(topic, dtype=pl.Int8),
            "owner_id": _ids(owner, n),
            "rep_logged": pl.repeat(rep_logged, n, eager=True),
        }
    ).with_columns(account_id=pl.col("true_account_id"))


def _ids(values: np.ndarray | None, n: int) -> pl.Series:
    """Ids as UInt32, or ``n`` nulls."""
    if values is None:
        return pl.repeat(None, n, dtype=pl.UInt32, eager=True)
    return pl.Series(values, dtype=pl.UInt32)


def _burst_activity(
    rng: np.random.Generator, bursts: pl.DataFrame, process: Process
) -> pl.DataFrame:
    """The intent a burst emits over the following weeks."""
    counts = rng.poisson(process.burst_activities * bursts["intensity"].to_numpy())
    row = np.repeat(np.arange(bursts.height), counts)
    when = (
        bursts["start"].to_numpy()[row] + rng.exponential(process.burst_spread_days, len(row)) * DAY
    )
    type_idx = _typed(rng, _BURST_MIX, len(row))
    topic = _topics(rng, type_idx, _topic_index(bursts["topic"])[row])
    return _frame(
        bursts["account_id"].to_numpy()[row], when, type_idx, topic, None, rep_logged=False
    )


def _rep_activity(
    rng: np.random.Generator,
    accounts: pl.DataFrame,
    bursts: pl.DataFrame,
    opportunities: pl.DataFrame,
    end_s: int,
) -> pl.DataFrame:
    """Calls and emails answering bursts, meetings on open deals, and cold outreach."""
    owner_of = accounts["owner_id"].to_numpy()
    answered = np.flatnonzero(rng.random(bursts.height) < 0.6)
    follow = np.repeat(answered, rng.integers(1, 4, len(answered)))
    follow_when = bursts["start"].to_numpy()[follow] + (1 + rng.exponential(3, len(follow))) * DAY
    opp_rows = np.repeat(np.arange(opportunities.height), rng.integers(2, 7, opportunities.height))
    opened, close = opportunities["opened_s"].to_numpy(), opportunities["close_s"].to_numpy()
    meet_when = (
        opened[opp_rows] + rng.random(len(opp_rows)) * (np.minimum(close, end_s) - opened)[opp_rows]
    )
    cold = rng.poisson(1.5 * HISTORY_DAYS / 365, accounts.height)
    cold_account = np.repeat(np.arange(accounts.height), cold)
    cold_when = end_s - rng.uniform(0, HISTORY_DAYS, len(cold_account)) * DAY
    account = np.concatenate(
        [
            bursts["account_id"].to_numpy()[follow],
            opportunities["account_id"].to_numpy()[opp_rows],
            cold_account,
        ]
    )
    kind = np.concatenate(
        [
            np.where(rng.random(len(follow)) < 0.5, _KEYS.index("call"), _KEYS.index("email")),
            np.full(len(opp_rows), _KEYS.index("meeting")),
            np.where(
                rng.random(len(cold_account)) < 0.4, _KEYS.index("call"), _KEYS.index("email")
            ),
        ]
    )
    when = np.concatenate([follow_when, meet_when, cold_when])
    no_topic = np.full(len(account), -1, dtype=np.int8)
    return _frame(account, when, kind, no_topic, owner_of[account], rep_logged=True)


def _background_activity(
    rng: np.random.Generator, accounts: pl.DataFrame, n: int, end_s: int
) -> pl.DataFrame:
    """Passive noise unrelated to buying: bigger companies read more blog posts."""
    weight = (
        rng.gamma(2.0, 1.0, accounts.height)
        * np.maximum(accounts["employees_true"].to_numpy(), 1) ** 0.2
    )
    weight *= accounts["duplicate_of"].is_null().to_numpy()
    account = rng.choice(accounts.height, size=n, p=weight / weight.sum())
    when = end_s - rng.uniform(0, HISTORY_DAYS, n) * DAY
    type_idx = _typed(rng, _BACKGROUND_MIX, n)
    topic = _topics(rng, type_idx, _topic_index(accounts["preferred_topic"])[account])
    return _frame(account, when, type_idx, topic, None, rep_logged=False)


def _attach_people(
    rng: np.random.Generator, frame: pl.DataFrame, people: pl.DataFrame
) -> pl.DataFrame:
    """Touches belong to a person of the account; where none is known, or a rep logged it on
    the account, to the account itself (as de-anonymised web intent does)."""
    known = people.filter(pl.col("true_account_id").is_not_null()).sort("true_account_id")
    account = frame["true_account_id"].to_numpy()
    n_accounts = max(int(account.max(initial=0)), int(known["true_account_id"].max() or 0)) + 1
    per_account = np.bincount(known["true_account_id"].to_numpy(), minlength=n_accounts)
    offsets = np.concatenate([[0], np.cumsum(per_account)[:-1]])
    pick_row = offsets[account] + (rng.random(len(account)) * per_account[account]).astype(np.int64)
    person_ids = known["person_id"].to_numpy().astype(np.int64)
    picked = person_ids[np.minimum(pick_row, len(known) - 1)]
    person = np.where(per_account[account] > 0, picked, -1)
    on_account_only = frame["rep_logged"].to_numpy() & (rng.random(len(account)) < 0.3)
    person = np.where(on_account_only, -1, person)
    return frame.with_columns(
        person_id=nullable(person),
        account_id=pl.when(frame["rep_logged"] | pl.Series(person < 0)).then("account_id"),
    )


def _orphan_activity(
    rng: np.random.Generator, people: pl.DataFrame, n: int, end_s: int
) -> pl.DataFrame:
    """Passive activity of people whose company is not in the CRM (it must count for no account)."""
    orphans = people.filter(pl.col("true_account_id").is_null())["person_id"].to_numpy()
    n = n if len(orphans) else 0
    type_idx = _typed(rng, _BACKGROUND_MIX, n)
    when = end_s - rng.uniform(0, HISTORY_DAYS, n) * DAY
    topic = _topics(rng, type_idx, rng.integers(0, len(TOPICS), n))
    frame = _frame(None, when, type_idx, topic, None, rep_logged=False)
    person = orphans[rng.integers(0, len(orphans), n)] if n else np.zeros(0, dtype=np.int64)
    return frame.with_columns(person_id=pl.Series(person, dtype=pl.UInt32))


def _dispositions(
    rng: np.random.Generator, accounts: pl.DataFrame, bursts: pl.DataFrame, end_s: int
) -> pl.DataFrame:
    """Reps' verdicts on recent strong bursts that were handed off: accepted, rejected, recycled."""
    recent = bursts.filter((pl.col("start") >= end_s - 180 * DAY) & (pl.col("intensity") > 1.0))
    recent = recent.filter(pl.Series(rng.random(recent.height) < 0.5))
    n = recent.height
    acc = accounts[recent["account_id"].to_numpy()]
    accepted = recent["opportunity_id"].is_not_null().to_numpy()
    reason = np.where(
        acc["is_customer"].to_numpy(),
        "Existing Customer",
        np.where(
            acc["is_competitor"].to_numpy(),
            "Competitor",
            np.where(
                acc["fit"].to_numpy() < -0.5,
                np.where(rng.random(n) < 0.5, "Wrong Persona", "No Budget"),
                np.where(rng.random(n) < 0.8, "Bad Timing", "Bad Data"),
            ),
        ),
    )
    recycled = ~accepted & (rng.random(n) < 0.15)
    disposition = np.where(accepted, "Accepted", np.where(recycled, "Recycled", "Rejected"))
    recorded = np.minimum(
        recent["start"].to_numpy() + (rng.uniform(1, 10, n) * DAY).astype(np.int64), end_s
    )
    return pl.DataFrame(
        {
            "account_id": recent["account_id"],
            "disposition": disposition,
            "reason_code": pl.select(
                pl.when(~pl.Series(accepted)).then(pl.Series(reason, dtype=pl.String))
            ).to_series(),
            "recorded_s": recorded,
            "owner_id": acc["owner_id"].cast(pl.UInt32),
        }
    ).sort("recorded_s")
