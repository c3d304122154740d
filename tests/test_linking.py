"""The link stage relinks only what a change reaches, and ends where relinking everyone would.

The org is written to the store as the mirror writes it (every row it writes is pending); a
cycle then changes accounts, people and deals the ways a CRM does, and the incremental link is
compared person by person with a full relink of the same state.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import polars as pl
import pytest
from sqlmodel import Session, col, select

from sandbox.generator import generate_org
from sandbox.org import Org
from sync import Store
from sync.config import MatchingSettings
from sync.linking import LinkCounts, link_people
from sync.matching.normalise import personal_domains
from sync.state import Account, Opportunity, Person

NOW = datetime(2026, 11, 1, tzinfo=UTC)
SETTINGS = MatchingSettings()


@pytest.fixture(scope="module")
def org() -> Org:
    return generate_org(120, 11)


def _mirrored(**values: Any) -> dict[str, Any]:
    """A row as the mirror writes it: stamped, live, pending for the link stage."""
    return values | {
        "crm_modified_at": NOW,
        "synced_at": NOW,
        "is_deleted": False,
        "link_pending": True,
    }


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def _load(store: Store, org: Org) -> None:
    accounts = [
        _mirrored(
            id=str(a["account_id"]),
            name=a["name"],
            website=a["website"],
            country=a["country"],
            parent_id=_text(a["parent_id"]),
            created_at=a["created_at"],
        )
        for a in org.accounts.iter_rows(named=True)
    ]
    people = [
        _mirrored(
            id=str(p["person_id"]),
            kind=p["kind"],
            email=p["email"],
            company=p["company"],
            country=p["country"],
            phone=p["phone"],
            account_id=_text(p["account_id"]),
            is_converted=p["is_converted"],
            converted_account_id=_text(p["converted_account_id"]),
        )
        for p in org.people.iter_rows(named=True)
    ]
    deals = [
        _mirrored(
            id=str(o["opportunity_id"]),
            account_id=str(o["account_id"]),
            is_closed=o["is_closed"],
        )
        for o in org.opportunities.iter_rows(named=True)
    ]
    with store.session() as session:
        store.upsert(session, Account, accounts)
        store.upsert(session, Person, people)
        store.upsert(session, Opportunity, deals)


def _links(session: Session) -> dict[str, tuple[Any, ...]]:
    rows = session.exec(
        select(
            Person.id,
            Person.matched_account_id,
            Person.match_rule,
            Person.match_confidence,
            Person.orphan_reason,
        ).where(col(Person.is_deleted).is_(False))
    )
    return {row[0]: tuple(row[1:]) for row in rows}


def _link(store: Store, *, full: bool = False) -> LinkCounts:
    with store.session() as session:
        return link_people(session, SETTINGS, full=full)


def _orphans_with_domains(links: dict[str, tuple[Any, ...]], org: Org) -> list[dict[str, Any]]:
    """Two leads no account matches, each with a corporate (not personal) email domain."""
    orphans = {p for p, (_, _, _, reason) in links.items() if reason == "company_not_in_crm"}
    people = org.people.filter(
        pl.col("person_id").cast(pl.String).is_in(list(orphans))
        & pl.col("email").is_not_null()
        & pl.col("company").is_not_null()
    )
    people = people.with_columns(domain=pl.col("email").str.split("@").list.last()).filter(
        ~pl.col("domain").is_in(list(personal_domains(())))
    )
    return list(
        people.unique("domain", keep="first", maintain_order=True).head(2).iter_rows(named=True)
    )


def _change_everything(store: Store, org: Org, links: dict[str, tuple[Any, ...]]) -> dict[str, str]:
    """One cycle's changes, written as the mirror would; the ids the test follows."""
    orphan, learner = _orphans_with_domains(links, org)
    by_name = next(p for p, v in links.items() if v[1] not in (None, "crm_link"))
    named = str(links[by_name][0])
    linked = next(p for p, v in links.items() if v[0] is not None and p != by_name)
    gone = next(str(v[0]) for p, v in links.items() if v[0] not in (None, named))
    teacher = next(str(v[0]) for p, v in links.items() if v[0] not in (None, named, gone))
    with store.session() as session:
        store.upsert(
            session,
            Account,
            [
                _mirrored(id="new-1", name="Qzxw Unrelated", website=f"https://{orphan['domain']}"),
                _mirrored(id=named, name="Renamed Beyond Recognition Ltd"),
                _mirrored(id=gone, name="gone") | {"is_deleted": True},
            ],
        )
        store.upsert(
            session,
            Person,
            [
                _mirrored(id=linked, kind="lead", email="someone@gmail.com", company=None),
                _mirrored(
                    id="new-p", kind="contact", email=f"x@{learner['domain']}", account_id=teacher
                ),
            ],
        )
        store.upsert(
            session,
            Opportunity,
            [_mirrored(id="new-o", account_id=named, is_closed=False)],
        )
    return {
        "orphan": str(orphan["person_id"]),
        "learner": str(learner["person_id"]),
        "teacher": teacher,
        "named": named,
        "gone": gone,
        "linked": linked,
    }


def test_an_incremental_link_ends_where_a_full_relink_does(store: Store, org: Org) -> None:
    _load(store, org)
    first = _link(store)
    with store.session() as session:
        before = _links(session)
    followed = _change_everything(store, org, before)

    cycle = _link(store)
    with store.session() as session:
        incremental = _links(session)
    again = _link(store)
    full = _link(store, full=True)
    with store.session() as session:
        relinked = _links(session)

    assert first.people == len(before) == org.people.height
    assert 0 < cycle.people < len(incremental)  # only what the changes reach
    assert incremental == relinked
    assert incremental[followed["orphan"]][:2] == ("new-1", "domain")
    assert incremental[followed["learner"]][0] == followed["teacher"]  # a domain learned
    assert incremental[followed["linked"]][0] is None
    assert all(v[0] != followed["gone"] for v in incremental.values())
    assert {"new-1", followed["gone"]} <= cycle.touched_accounts
    assert again.people == 0 and again.touched_accounts == frozenset()
    assert (again.linked, again.review, again.orphans) == (
        cycle.linked,
        cycle.review,
        cycle.orphans,
    )
    assert full.full and full.people == len(relinked) and full.touched_accounts == frozenset()
