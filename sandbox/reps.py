"""The selling org's users: a marketing queue, SDRs, AEs and managers in territories."""

from __future__ import annotations

import numpy as np
import polars as pl

from sandbox.draw import gather, nullable, pick
from sandbox.vocab import FIRST_NAMES, LAST_NAMES, REGIONS

__all__ = ["MARKETING_QUEUE_ID", "SELLER_DOMAIN", "make_users", "owners_in_region"]

MARKETING_QUEUE_ID = 0
SELLER_DOMAIN = "example.com"
_ROLES = ("sdr", "ae", "manager", "marketing")
_ROLE_WEIGHTS = (45, 37, 10, 8)
_TERRITORY_WEIGHTS = (45, 30, 15, 10)


def make_users(rng: np.random.Generator, n_accounts: int, end_s: int) -> pl.DataFrame:
    """Users sized to the org (one per ~400 accounts, at least 16), the queue user first."""
    n = max(16, n_accounts // 400)
    role = pick(rng, len(_ROLES), n, _ROLE_WEIGHTS)
    territory = pick(rng, len(REGIONS), n, _TERRITORY_WEIGHTS)
    role[1 : 1 + 2 * len(REGIONS)] = np.repeat(
        [_ROLES.index("ae"), _ROLES.index("sdr")], len(REGIONS)
    )
    territory[1 : 1 + 2 * len(REGIONS)] = np.tile(np.arange(len(REGIONS)), 2)
    firsts, lasts = FIRST_NAMES["en"], LAST_NAMES["en"]
    fi, li = rng.integers(0, len(firsts), n), rng.integers(0, len(lasts), n)
    first = gather([f[0] for f in firsts], fi)
    last = gather([x[0] for x in lasts], li)
    email = (
        gather([f[1] for f in firsts], fi)
        + "."
        + gather([x[1] for x in lasts], li)
        + pl.Series(np.arange(n)).cast(pl.String)
        + "@"
        + SELLER_DOMAIN
    )
    frame = pl.DataFrame(
        {
            "user_id": pl.Series(np.arange(n), dtype=pl.UInt32),
            "first_name": first,
            "last_name": last,
            "email": email,
            "role": gather(_ROLES, role),
            "territory": gather(REGIONS, territory),
            "is_active": rng.random(n) >= 0.06,
            "out_of_office": rng.random(n) < 0.04,
            "created_s": (end_s - rng.uniform(60, 2000, n) * 86_400).astype(np.int64),
        }
    )
    frame = _marketing_queue(frame)
    return frame.with_columns(
        name=pl.concat_str("first_name", "last_name", separator=" "),
        manager_id=_managers(rng, frame),
        modified_s=pl.col("created_s"),
    )


def _marketing_queue(frame: pl.DataFrame) -> pl.DataFrame:
    """User 0 is the always-active marketing queue that owns unworked records."""
    queue = pl.DataFrame(
        {
            "user_id": [MARKETING_QUEUE_ID],
            "first_name": ["Marketing"],
            "last_name": ["Queue"],
            "email": [f"marketing-queue@{SELLER_DOMAIN}"],
            "role": ["marketing"],
            "territory": ["GLOBAL"],
            "is_active": [True],
            "out_of_office": [False],
        },
        schema_overrides={"user_id": pl.UInt32},
    )
    return frame.update(queue, on="user_id")


def _managers(rng: np.random.Generator, users: pl.DataFrame) -> pl.Series:
    """Each rep reports to a manager of their territory where one exists."""
    managers = users.filter(pl.col("role") == "manager")
    by_territory = {t: g["user_id"].to_numpy() for (t,), g in managers.group_by("territory")}
    out = np.full(users.height, -1, dtype=np.int64)
    for territory, ids in by_territory.items():
        rows = np.flatnonzero((users["territory"] == territory).to_numpy())
        out[rows] = ids[rng.integers(0, len(ids), len(rows))]
    out[(users["role"] == "manager").to_numpy()] = -1
    return nullable(out).alias("manager_id")


def owners_in_region(
    rng: np.random.Generator, users: pl.DataFrame, role: str, region: pl.Series
) -> np.ndarray:
    """For each row, a random user of ``role`` in that row's region (the queue if none)."""
    out = np.full(len(region), MARKETING_QUEUE_ID, dtype=np.int64)
    region_np = region.to_numpy()
    for territory in REGIONS:
        ids = users.filter((pl.col("role") == role) & (pl.col("territory") == territory))["user_id"]
        rows = np.flatnonzero(region_np == territory)
        if len(ids) and len(rows):
            out[rows] = ids.to_numpy()[rng.integers(0, len(ids), len(rows))]
    return out
