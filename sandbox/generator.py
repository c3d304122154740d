"""The deterministic generator of a synthetic B2B CRM org (same seed, same org)."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import polars as pl

from sandbox.companies import make_companies
from sandbox.draw import stream, to_utc
from sandbox.engagement import make_engagement
from sandbox.org import FORMAT_VERSION, Org, OrgManifest
from sandbox.people import make_people
from sandbox.reps import MARKETING_QUEUE_ID, make_users, owners_in_region
from sandbox.truth import GroundTruth, epoch_seconds
from sandbox.world import DEFAULT_PRESET, PRESETS, WorldParams

__all__ = ["DEFAULT_END", "generate_org"]

DEFAULT_END = datetime(2026, 11, 1, tzinfo=UTC)
_ACCOUNT_COLUMNS = (
    "account_id",
    "name",
    "website",
    "domain",
    "alias_domain",
    "country",
    "region",
    "city",
    "industry",
    "employees",
    "revenue",
    "parent_id",
    "owner_id",
    "is_customer",
    "is_competitor",
    "phone",
)
_PEOPLE_COLUMNS = (
    "person_id",
    "kind",
    "first_name",
    "last_name",
    "email",
    "company",
    "title",
    "phone",
    "country",
    "city",
    "account_id",
    "is_converted",
    "converted_account_id",
    "owner_id",
    "lead_source",
    "status",
)


def generate_org(
    accounts: int,
    seed: int,
    *,
    end: datetime = DEFAULT_END,
    people_per_account: float = 5.0,
    activities_per_account: float = 50.0,
    world: WorldParams = PRESETS[DEFAULT_PRESET],
) -> Org:
    """Generate an org of ``accounts`` accounts whose history ends at ``end``, in the ``world``
    (``sandbox.world``: how much of each account's propensity the CRM reveals)."""
    if accounts < 1:
        raise ValueError(f"an org needs at least one account, got {accounts}")
    end_s = epoch_seconds(end)
    users = make_users(stream(seed, 1), accounts, end_s)
    companies = make_companies(stream(seed, 2), accounts, max(1, accounts // 5), end_s, world)
    owned = _assign_owners(stream(seed, 3), companies.accounts, users)
    people = make_people(
        stream(seed, 4),
        owned,
        companies.orphans,
        users,
        round(accounts * people_per_account),
        end_s,
    )
    engagement = make_engagement(
        stream(seed, 5), owned, people, users, end_s, activities_per_account, world.process
    )
    manifest = OrgManifest(
        format_version=FORMAT_VERSION,
        seed=seed,
        accounts=accounts,
        people_per_account=people_per_account,
        activities_per_account=activities_per_account,
        end=end.astimezone(UTC).isoformat(),
        preset=world.preset,
        world=world.parameters(),
    )
    truth = GroundTruth(
        people=people.select("person_id", "true_account_id", "true_company", "duplicate_of"),
        accounts=engagement.account_truth,
        bursts=engagement.bursts,
        process=world.process,
    )
    return Org(
        manifest=manifest,
        accounts=_dated(owned.select(*_ACCOUNT_COLUMNS, "created_s", "modified_s")),
        people=_dated(people.select(*_PEOPLE_COLUMNS, "created_s", "modified_s")),
        users=_dated(
            users.drop("created_s", "modified_s").with_columns(
                created_s=users["created_s"], modified_s=users["modified_s"]
            )
        ),
        activities=_dated(engagement.activities),
        opportunities=_dated(engagement.opportunities),
        dispositions=_dated(engagement.dispositions),
        truth=truth,
    )


def _assign_owners(
    rng: np.random.Generator, accounts: pl.DataFrame, users: pl.DataFrame
) -> pl.DataFrame:
    """Three in four accounts are owned by an AE of their region, the rest by the queue."""
    ae = owners_in_region(rng, users, "ae", accounts["region"])
    owner = np.where(rng.random(accounts.height) < 0.75, ae, MARKETING_QUEUE_ID)
    return accounts.with_columns(owner_id=pl.Series(owner, dtype=pl.UInt32))


def _dated(frame: pl.DataFrame) -> pl.DataFrame:
    """Epoch-second columns (``*_s``) as aware UTC datetimes named ``*_at``."""
    renames = {
        "created_s": "created_at",
        "modified_s": "modified_at",
        "occurred_s": "occurred_at",
        "opened_s": "opened_at",
        "close_s": "close_at",
        "recorded_s": "recorded_at",
    }
    present = [c for c in renames if c in frame.columns]
    return frame.with_columns(to_utc(pl.col(c)).alias(renames[c]) for c in present).drop(present)
