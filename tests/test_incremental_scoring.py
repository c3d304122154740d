"""Incremental scoring end to end on the Salesforce sandbox, real client over loopback HTTP.

After each cycle the sums kept in the state database, read as of the run's `now`, must score
every account exactly as a full rescore from the mirror (`score_book`) does at that moment;
new activity is added through the CRM's own API, so it reaches us the way a rep's does.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sqlalchemy import event
from sqlmodel import col, func, select

import tests.test_sync_run as sync_run
from connectors.errors import BudgetExhausted
from sandbox.org import Org
from sync import Store, account_signals
from sync.account_signals import uncounted
from sync.matching.normalise import personal_domains
from sync.orphans import orphan_scores
from sync.run import RunReport, run_sync
from sync.scoring_state import Book, current_model, score_book, score_stored
from sync.state import (
    Account,
    AccountSignals,
    Activity,
    CurrentScore,
    PendingOrphan,
    Person,
    ScoringState,
    WriteLedger,
)
from tests.conftest import BACKENDS
from tests.sandbox_fixtures import salesforce_client

ACCOUNTS = 60


@pytest.fixture(scope="module")
def org() -> Org:
    return sync_run.generate_org(ACCOUNTS, 5)


@pytest.fixture
def crm(org: Org) -> Iterator[sync_run.Crm]:
    with ExitStack() as stack:
        yield sync_run._open(stack, "salesforce", org)


def _store_url(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if backend == "postgresql":
        return str(request.getfixturevalue("pg_schema_url"))
    return f"sqlite:///{tmp_path / 'state.db'}"


def _stored_and_full(store: Store, crm: sync_run.Crm) -> tuple[Book, Book]:
    """Every account scored from its stored sums, and by a full rescore, at the clock's now."""
    setup = sync_run._config().scoring
    with store.session() as session:
        full = score_book(session, setup, crm.time.now)
        rows = session.exec(
            select(AccountSignals.account_id, AccountSignals.sums).order_by(
                col(AccountSignals.account_id)
            )
        ).all()
        model = current_model(session, setup)
        stored = score_stored(session, setup, model, crm.time.now, [(a, s) for a, s in rows])
    return stored, full


def _assert_as_full_rescore(store: Store, crm: sync_run.Crm) -> None:
    stored, full = _stored_and_full(store, crm)
    assert stored.account_ids == full.account_ids
    np.testing.assert_allclose(
        stored.scores.contributions.points, full.scores.contributions.points, atol=1e-3
    )
    assert stored.scores.score.tolist() == full.scores.score.tolist()
    assert stored.scores.tier.tolist() == full.scores.tier.tolist()
    for ours, theirs in zip(stored.explanations, full.explanations, strict=True):
        assert (ours.reasons, ours.keys, ours.topic) == (theirs.reasons, theirs.keys, theirs.topic)


def _linked_leads(store: Store, count: int) -> list[tuple[str, str]]:
    """(lead, its account) of `count` linked leads of distinct accounts, in id order."""
    with store.session() as session:
        rows = session.exec(
            select(Person.id, Person.matched_account_id)
            .where(Person.kind == "lead", col(Person.matched_account_id).is_not(None))
            .order_by(col(Person.id))
        ).all()
    found: dict[str, str] = {}
    for lead, account in rows:
        if account not in found.values():
            found[lead] = str(account)
    return list(found.items())[:count]


def _touch(crm: sync_run.Crm, who: str, kind: str, subject: str, **more: Any) -> str:
    """A marketing touch on a lead, logged as a Task through the CRM's API (at the clock's now)."""
    client = salesforce_client(crm.sandbox)
    body = {"WhoId": who, "Subject": subject, "Type": kind, "TaskSubtype": "Task", **more}
    return str(client.Task.create(body)["id"])


def _pricing(crm: sync_run.Crm, who: str) -> str:
    return _touch(crm, who, "Web Visit", "Visited pricing page: security")


@pytest.mark.parametrize("backend", BACKENDS)
def test_incremental_cycles_score_every_account_as_a_full_rescore(
    crm: sync_run.Crm, backend: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    with Store.open(_store_url(backend, request, tmp_path)) as store:
        first = crm.run(store)
        _assert_as_full_rescore(store, crm)
        leads = _linked_leads(store, 4)
        crm.time.tick(600)
        for lead, _ in leads:
            _pricing(crm, lead)
            crm.time.tick(30)
            _touch(crm, lead, "Form Submission", "Requested a demo: ai")
        crm.time.tick(600)
        second = crm.run(store)
        _assert_as_full_rescore(store, crm)
        rescored = [_scored(store, second)]
        crm.time.tick(600)
        _pricing(crm, leads[0][0])
        crm.time.tick(600)
        third = crm.run(store)
        _assert_as_full_rescore(store, crm)
        rescored.append(_scored(store, third))
        waiting = _uncounted(store)

    assert first.rescored_all == "first" and first.rebuilt == {"full": ACCOUNTS}
    assert first.scored == ACCOUNTS
    assert second.rescored_all is None and second.rebuilt == {}  # every activity added in O(1)
    assert {account for _, account in leads} <= rescored[0]
    assert third.rebuilt == {} and leads[0][1] in rescored[1]
    assert third.scored < ACCOUNTS  # only what changed: the new activity, our own writes' echo
    assert sum(third.tiers.values()) == ACCOUNTS  # the tiers of the whole book
    assert waiting == []


_DEMO_REQUEST = ("Requested a demo: ai", "Form Submission")  # an Event's subject and type


def _event_later(
    crm: sync_run.Crm, lead: str, subject: str = _DEMO_REQUEST[0], kind: str = _DEMO_REQUEST[1]
) -> str:
    """An Event of the lead two hours after the clock's time (a demo request by default)."""
    coming = crm.time.now + timedelta(hours=2)
    values = {"WhoId": lead, "Subject": subject, "Type": kind}
    created = salesforce_client(crm.sandbox).Event.create(
        {**values, "ActivityDateTime": coming.isoformat(), "DurationInMinutes": 1}
    )
    return str(created["id"])


def _uncounted(store: Store) -> list[str]:
    """The activities no scoring cycle has counted yet."""
    with store.session() as session:
        state = session.get(ScoringState, 1)
        last = 0 if state is None else state.seq
        return list(session.exec(select(Activity.id).where(uncounted(last))))


def _scored(store: Store, report: RunReport) -> set[str]:
    """The accounts a run rescored (their current score is that run's)."""
    with store.session() as session:
        rows = session.exec(
            select(CurrentScore.account_id).where(CurrentScore.run_id == report.run_id)
        ).all()
    assert len(rows) == report.scored
    return set(rows)


def test_each_rebuild_trigger_rebuilds_only_its_accounts_and_says_why(
    crm: sync_run.Crm, tmp_path: Path
) -> None:
    with Store.open(f"sqlite:///{tmp_path / 'state.db'}") as store:
        crm.run(store)
        (lead, account), (other_lead, other_account) = _linked_leads(store, 2)
        client = salesforce_client(crm.sandbox)
        cycles: dict[str, RunReport] = {}

        def cycle(name: str) -> None:
            crm.time.tick(600)
            cycles[name] = crm.run(store)
            _assert_as_full_rescore(store, crm)

        crm.time.tick(60)
        task = _pricing(crm, lead)
        cycle("added")
        late = crm.time.now - timedelta(days=2)
        client.Event.create(
            {
                "WhoId": lead,
                "Subject": "Visited pricing page: security",
                "Type": "Web Visit",
                "ActivityDateTime": late.isoformat(),
                "DurationInMinutes": 1,
            }
        )
        cycle("late")
        client.Task.update(task, {"Type": "Form Submission", "Subject": "Requested a demo: ai"})
        cycle("edited")  # now a demo request, no longer a pricing visit
        client.Task.delete(task)
        cycle("delete")
        other = client.Lead.get(other_lead)
        client.Lead.update(lead, {"Email": other["Email"], "Company": other["Company"]})
        cycle("relink")
        survivor = crm.merge(other_account, account)
        cycle("merge")
        created = str(client.Account.create({"Name": "Brandnew GmbH"})["id"])
        cycle("new")

    assert cycles["added"].rebuilt == {}
    assert cycles["late"].rebuilt == {"late": 1}
    assert cycles["edited"].rebuilt == {"edited": 1}
    assert cycles["delete"].rebuilt == {"delete": 1}
    assert cycles["relink"].rebuilt.get("relink") == 2  # the account it left and the one it joined
    assert cycles["merge"].rebuilt.get("merge") == 1 and survivor == other_account
    assert cycles["new"].rebuilt == {"new": 1} and created in _scored(store, cycles["new"])
    with store.session() as session:
        assert session.get(AccountSignals, account) is None  # the merged-away account's sums


def test_an_activity_dated_after_a_run_is_counted_once_by_the_first_run_after_it(
    crm: sync_run.Crm, tmp_path: Path
) -> None:
    with Store.open(f"sqlite:///{tmp_path / 'state.db'}") as store:
        crm.run(store)
        (lead, account), *_ = _linked_leads(store, 1)
        _event_later(crm, lead)
        runs: list[RunReport] = []
        waiting: list[list[str]] = []
        for seconds in (600, 3 * 3_600, 600):  # before it, after it, and once more
            crm.time.tick(seconds)
            runs.append(crm.run(store))
            _assert_as_full_rescore(store, crm)  # missed or counted twice: scored otherwise
            waiting.append(_uncounted(store))
        before, after, again = runs

    assert [len(w) for w in waiting] == [1, 0, 0]
    assert before.rebuilt == after.rebuilt == again.rebuilt == {}  # added in O(1) when due
    assert account in _scored(store, after) and account not in _scored(store, again)


def test_a_full_rebuild_leaves_an_activity_dated_after_it_to_the_first_run_after_it(
    crm: sync_run.Crm, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a rebuild tells from its read of the history whether any activity is to be left; it
    # updates none when none is (that update reads the whole table)
    deferrals: list[int] = []
    defer = account_signals.defer
    monkeypatch.setattr(account_signals, "defer", lambda *a: deferrals.append(1) or defer(*a))
    with Store.open(f"sqlite:///{tmp_path / 'state.db'}") as store:
        first = crm.run(store)
        (lead, account), *_ = _linked_leads(store, 1)
        _event_later(crm, lead)
        crm.time.tick(600)
        full = crm.run(store, full=True)
        waiting = [_uncounted(store)]
        crm.time.tick(3 * 3_600)
        after = crm.run(store)
        _assert_as_full_rescore(store, crm)
        waiting.append(_uncounted(store))

    assert first.rebuilt == {"full": ACCOUNTS} and full.rebuilt == {"full": ACCOUNTS}
    assert deferrals == [1, 1]  # the full rebuild's and the cycle's; not the first run's
    assert [len(w) for w in waiting] == [1, 0]
    assert after.rebuilt == {} and account in _scored(store, after)


def test_an_activity_dated_later_that_a_rebuild_did_not_score_is_counted_once_when_it_scores(
    crm: sync_run.Crm, tmp_path: Path
) -> None:
    # of a type no signal counts when every account was rebuilt, it was left uncounted by none;
    # retyped before its date, it is flagged, and left to the cycle after its date then
    with Store.open(f"sqlite:///{tmp_path / 'state.db'}") as store:
        crm.run(store)
        (lead, account), *_ = _linked_leads(store, 1)
        event = _event_later(crm, lead, "Catch-up", "Other")
        crm.time.tick(600)
        full = crm.run(store, full=True)
        with store.session() as session:
            kind = session.exec(select(Activity.type).where(Activity.id == event)).one()
        waiting = [_uncounted(store)]
        crm.time.tick(600)
        retype = {"Subject": _DEMO_REQUEST[0], "Type": _DEMO_REQUEST[1]}
        salesforce_client(crm.sandbox).Event.update(event, retype)
        crm.time.tick(600)
        retyped = crm.run(store)
        waiting.append(_uncounted(store))
        crm.time.tick(3 * 3_600)
        after = crm.run(store)
        _assert_as_full_rescore(store, crm)  # not counted, or counted twice: scored otherwise
        waiting.append(_uncounted(store))

    assert kind == "other" and full.rebuilt == {"full": ACCOUNTS}
    assert [len(w) for w in waiting] == [0, 1, 0] and waiting[1] == [event]
    assert retyped.rebuilt == {"edited": 1} and account in _scored(store, after)


def test_runs_at_one_moment_rescore_only_what_changed_since_the_one_before(
    crm: sync_run.Crm, tmp_path: Path
) -> None:
    moment, config = crm.time.now, sync_run._config()

    def run(store: Store) -> RunReport:  # as the sandbox's `handoff sync` does: one present
        return run_sync(config, crm.connector, store, moment)

    with Store.open(f"sqlite:///{tmp_path / 'state.db'}") as store:
        run(store)
        echo = run(store)  # our own writes read back
        quiet = run(store)  # nothing since
        _assert_as_full_rescore(store, crm)
        (_, account), *_ = _linked_leads(store, 1)
        crm.time.tick(60)  # the CRM's clock moves on, the run's present does not
        crm.edit_tier(account, "AE")  # by hand
        repaired = run(store)

    # the echo of our writes is checked against the ledger, not relinked nor rescored
    assert echo.rebuilt == {} and echo.written == {} and echo.unchanged > 0
    assert echo.scored == echo.orphans_scored == echo.link.people == 0
    assert quiet.scored == quiet.orphans_scored == quiet.link.people == 0 and quiet.rebuilt == {}
    assert repaired.scored == 1 and repaired.written == {crm.accounts: 1}


class Killed(Exception):
    """The run's process ended at a chosen point."""


def test_a_run_stopped_between_link_and_score_leaves_the_relink_to_the_next(
    crm: sync_run.Crm, tmp_path: Path
) -> None:
    with Store.open(f"sqlite:///{tmp_path / 'state.db'}") as store:
        crm.run(store)
        (lead, account), (other_lead, other_account) = _linked_leads(store, 2)
        client = salesforce_client(crm.sandbox)
        other = client.Lead.get(other_lead)
        crm.time.tick(600)
        client.Lead.update(lead, {"Email": other["Email"], "Company": other["Company"]})
        crm.time.tick(600)
        stages: list[int] = []

        def killed_before_score() -> None:
            stages.append(len(stages) + 1)  # called before each stage after the first
            if len(stages) == 2:
                raise Killed

        with pytest.raises(Killed):
            run_sync(sync_run._config(), crm.connector, store, crm.time.now,
                     heartbeat=killed_before_score)  # fmt: skip
        with store.session() as session:
            relinked = session.get(Person, lead)
        crm.time.tick(600)
        resumed = crm.run(store)
        _assert_as_full_rescore(store, crm)

    assert relinked is not None and relinked.matched_account_id == other_account  # committed
    assert resumed.link.people == 0  # the link was done: nothing left to relink
    assert resumed.rebuilt.get("relink") == 2  # the account it left and the one it joined
    assert {account, other_account} <= _scored(store, resumed)


def test_the_nightly_rescore_reads_stored_sums_and_writes_only_what_a_rep_would_notice(
    crm: sync_run.Crm, tmp_path: Path
) -> None:
    with Store.open(f"sqlite:///{tmp_path / 'state.db'}") as store:
        crm.run(store)
        crm.time.tick(600)
        crm.run(store)  # our own writes' echo is read back: nothing left to notice
        crm.time.tick(3 * 86_400)
        nightly = crm.run(store)
        _assert_as_full_rescore(store, crm)
        crm.time.tick(600)
        later = crm.run(store)
        with store.session() as session:
            state = session.get(ScoringState, 1)
            pending = session.exec(select(AccountSignals).where(AccountSignals.pending)).all()

    assert nightly.rescored_all == "nightly" and nightly.scored == ACCOUNTS
    assert nightly.rebuilt == {}  # no history read: every account from its stored sums
    written = nightly.written.get(crm.accounts, 0)
    assert written < ACCOUNTS and nightly.unchanged > 0
    assert later.rescored_all is None and later.scored < ACCOUNTS
    assert state is not None and state.nightly_at == nightly.started_at
    assert pending == []


def test_rescored_accounts_stay_pending_until_written_and_a_dry_run_keeps_nothing(
    crm: sync_run.Crm, tmp_path: Path
) -> None:
    assert isinstance(crm.connector, sync_run.Counting)
    with Store.open(f"sqlite:///{tmp_path / 'state.db'}") as store:
        crm.run(store)
        crm.time.tick(600)
        crm.run(store)  # our own writes' echo
        (lead, account), *_ = _linked_leads(store, 1)
        crm.time.tick(600)
        for _ in range(6):
            _pricing(crm, lead)
            crm.time.tick(20)
        crm.time.tick(600)
        dry = crm.run(store, dry_run=True)
        waiting = _uncounted(store)

        def out_of_budget() -> None:
            raise BudgetExhausted("daily API allowance used")

        crm.connector.before_push.append(out_of_budget)
        crm.time.tick(60)
        stopped = crm.run(store)
        with store.session() as session:
            row = session.get(AccountSignals, account)
            assert row is not None and row.pending
        crm.time.tick(60)
        resumed = crm.run(store)
        with store.session() as session:
            row = session.get(AccountSignals, account)
            assert row is not None and not row.pending

    assert account in {p["id"] for p in dry.sample} and len(waiting) == 6  # nothing kept
    assert stopped.outcome == "stopped" and stopped.written == {}
    assert resumed.outcome == "ok" and resumed.written.get(crm.accounts, 0) >= 1
    assert resumed.rebuilt == {}


def _orphan_with_most_activity(store: Store) -> tuple[str, str]:
    """(lead, its email's domain) of the orphan lead with a company email and the most activity
    of its own (naming no account)."""
    own = func.count(col(Activity.id))
    with store.session() as session:
        rows = session.exec(
            select(Person.id, Person.email)
            .join(Activity, col(Activity.person_id) == col(Person.id))
            .where(
                Person.kind == "lead",
                col(Person.matched_account_id).is_(None),
                col(Person.is_converted).is_(False),
                col(Activity.account_id).is_(None),
            )
            .group_by(col(Person.id), col(Person.email))
            .order_by(own.desc(), col(Person.id))
        ).all()
    personal = personal_domains(())
    return next(
        (lead, email.split("@")[1])
        for lead, email in rows
        if email and email.split("@")[1] not in personal
    )


def _account_without_people_or_website(store: Store) -> str:
    linked = select(Person.matched_account_id).where(col(Person.matched_account_id).is_not(None))
    with store.session() as session:
        return str(
            session.exec(
                select(Account.id)
                .where(col(Account.id).not_in(linked), col(Account.website).is_(None))
                .order_by(col(Account.id))
            ).first()
        )


def test_an_orphan_whose_account_appears_brings_its_past_activity_to_that_account(
    crm: sync_run.Crm, tmp_path: Path
) -> None:
    with Store.open(f"sqlite:///{tmp_path / 'state.db'}") as store:
        crm.run(store)
        orphan, domain = _orphan_with_most_activity(store)
        account = _account_without_people_or_website(store)
        crm.time.tick(600)
        salesforce_client(crm.sandbox).Account.update(account, {"Website": f"https://{domain}"})
        crm.time.tick(600)
        report = crm.run(store)
        _assert_as_full_rescore(store, crm)  # its sums hold the orphan's past activity
        shown = crm.shown(crm.people, [orphan])[orphan]

    assert (orphan, None, account) in report.link.relinked  # a first link
    assert report.rebuilt.get("relink", 0) >= 1 and account in _scored(store, report)
    assert shown["matched_account_id"] == account and shown["orphan_reason"] is None


def _orphan_written(store: Store, lead: str) -> dict[str, Any]:
    with store.session() as session:
        row = session.get(WriteLedger, ("Lead", lead))
    assert row is not None
    return dict(row.values)


def _orphans_pending(store: Store) -> set[str]:
    with store.session() as session:
        return set(session.exec(select(PendingOrphan.person_id)).all())


def test_only_orphans_touched_are_rescored_and_one_stays_pending_until_written(
    crm: sync_run.Crm, tmp_path: Path
) -> None:
    assert isinstance(crm.connector, sync_run.Counting)
    setup = sync_run._config().scoring
    with Store.open(f"sqlite:///{tmp_path / 'state.db'}") as store:
        first = crm.run(store)
        crm.time.tick(600)
        echo = crm.run(store)  # our own writes read back: every written lead pulled again
        crm.time.tick(600)
        quiet = crm.run(store)
        orphan, _ = _orphan_with_most_activity(store)
        crm.time.tick(600)
        for _ in range(4):
            _touch(crm, orphan, "Form Submission", "Requested a demo: ai")
            crm.time.tick(20)
        crm.time.tick(600)

        def out_of_budget() -> None:
            raise BudgetExhausted("daily API allowance used")

        crm.connector.before_push.append(out_of_budget)
        stopped = crm.run(store)
        pending = _orphans_pending(store)
        crm.time.tick(60)
        resumed = crm.run(store)
        with store.session() as session:
            everyone = orphan_scores(session, setup, crm.time.now)
        written = _orphan_written(store, orphan)

    assert first.orphans_scored == first.orphans_written > 0
    assert echo.orphans_scored == 0 and echo.written == {}  # our writes read back: no change
    assert quiet.orphans_scored == 0 and quiet.written == {} and quiet.scored == 0
    assert stopped.outcome == "stopped" and stopped.orphans_scored == 1 and pending == {orphan}
    assert resumed.orphans_scored == 1 and resumed.orphans_written == 1
    assert resumed.written == {crm.people: 1} and _orphans_pending(store) == set()
    # what a rescore of every orphan at that moment gives it
    assert written["score"] == everyone[orphan].score and written["tier"] == "AE"
    assert written["signals"] == everyone[orphan].values["signals"]


def test_a_cycle_looks_orphans_up_by_id_not_by_walking_every_orphan(
    crm: sync_run.Crm, tmp_path: Path
) -> None:
    # "id IN (...) AND matched_account_id IS NULL": an index holding every orphan's null led
    # SQLite to walk all of the org's orphans for each lookup, once the list held a few dozen ids
    # (revision 0016 keeps the nulls out of it)
    with Store.open(f"sqlite:///{tmp_path / 'state.db'}") as store:
        crm.run(store)
        crm.time.tick(600)
        with store.session() as session:
            orphans = session.exec(
                select(Person.id).where(
                    Person.kind == "lead",
                    col(Person.matched_account_id).is_(None),
                    col(Person.is_converted).is_(False),
                )
            ).all()
        for orphan in orphans:
            _touch(crm, orphan, "Form Submission", "Requested a demo: ai")
        crm.time.tick(600)
        asked: list[tuple[str, Any]] = []

        def seen(_c: Any, _k: Any, statement: str, parameters: Any, *_: Any) -> None:
            if "matched_account_id IS NULL" in statement and "person.id IN" in statement:
                asked.append((statement, parameters))

        event.listen(store.engine, "before_cursor_execute", seen)
        report = crm.run(store)
        event.remove(store.engine, "before_cursor_execute", seen)
        with store.engine.connect() as connection:
            plans = [
                " / ".join(
                    str(step[-1])
                    for step in connection.exec_driver_sql(f"EXPLAIN QUERY PLAN {sql}", given)
                )
                for sql, given in asked
            ]

    assert len(orphans) >= 30 and report.orphans_scored == len(orphans)
    assert len(plans) >= 3 and all("sqlite_autoindex_person_1" in p for p in plans), plans
    assert [p for p in plans if "ix_person_matched_account_id" in p] == []
