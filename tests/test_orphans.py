"""Orphan leads are scored on their own, like an account with their company fields and activity."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from handoff.runs import scoring_setup
from handoff.settings import Settings
from sync import Store
from sync.orphans import orphan_scores
from sync.scoring_state import score_book
from sync.state import Account, Activity, Person
from sync.writeback import account_scores

NOW = datetime(2026, 11, 20, 12, tzinfo=UTC)
SETUP = scoring_setup(Settings())


def _mirrored(**values: Any) -> dict[str, Any]:
    return values | {"crm_modified_at": NOW, "synced_at": NOW, "is_deleted": False}


def _lead(person_id: str, country: str | None, **values: Any) -> dict[str, Any]:
    return (
        _mirrored(id=person_id, kind="lead", country=country)
        | {"orphan_reason": "company_not_in_crm"}
        | values
    )


def _visits(prefix: str, days: tuple[int, ...], **owner: str) -> list[dict[str, Any]]:
    return [
        _mirrored(id=f"{prefix}{day}", type="pricing_page", occurred_at=NOW - timedelta(days=day))
        | owner
        for day in days
    ]


def _load(store: Store) -> None:
    with store.session() as session:
        store.upsert(
            session,
            Account,
            [
                _mirrored(id="twin", name="Twin", country="DE", industry="Software", employees=400)
                | {"revenue": 2e7},
                _mirrored(id="a", name="A"),
            ],
        )
        linked = {"orphan_reason": None, "matched_account_id": "a", "match_rule": "domain"}
        review = {"orphan_reason": "ambiguous_accounts", "match_rule": "domain"}
        store.upsert(
            session,
            Person,
            [
                _lead("keen", "DE", industry="Software", employees=400, revenue=2e7),
                _lead("banned", "RU"),
                _lead("tiny", "DE", employees=4),
                _lead("undecided", None, **review),
                _lead("converted", "DE", is_converted=True, converted_account_id="a"),
                _lead("linked", "DE", **linked),
            ],
        )
        store.upsert(
            session,
            Activity,
            [
                *_visits("keen-", (1, 2, 3), person_id="keen"),
                *_visits("keen-at-a-", (1, 2), person_id="keen", account_id="a"),
                *_visits("twin-", (1, 2, 3), account_id="twin"),
                *_visits("banned-", (1, 2), person_id="banned"),
                *_visits("converted-", (1,), person_id="converted"),
            ],
        )


def test_an_orphan_scores_as_an_account_with_its_fields_and_activity_would(store: Store) -> None:
    _load(store)
    with store.session() as session:
        orphans = orphan_scores(session, SETUP, NOW)
        book = score_book(session, SETUP, NOW)
    twin = account_scores(book, SETUP.tiers, NOW)["twin"]
    keen, banned, undecided = orphans["keen"], orphans["banned"], orphans["undecided"]

    assert set(orphans) == {"keen", "banned", "tiny", "undecided"}  # not converted, not linked
    assert "Industry: Software" in "\n".join(keen.sentences)
    assert keen.score == twin.score > 0 and keen.sentences == twin.sentences
    assert {
        k: v for k, v in keen.values.items() if k not in ("matched_account_id", "orphan_reason")
    } == twin.values
    assert (
        "Visited pricing" in (keen.values["signals"] or "") and "ago" not in keen.values["signals"]
    )
    assert keen.values["matched_account_id"] is None
    assert keen.values["orphan_reason"] == (
        "Orphan: no account has the email domain or the company name"
    )
    assert (banned.tier, banned.values["disqualification_reason"]) == (
        "disqualified",
        "Restricted country",
    )
    assert orphans["tiny"].values["disqualification_reason"] == "Fewer than 10 employees"
    assert undecided.values["orphan_reason"].startswith("In review: equally supported")
    assert undecided.score == 0
