"""The first run fits the predictive model on its own once the org's history suffices.

End to end on the sandbox with the real client libraries: an org with enough history (the
demo's size) has its first run train, promote and score with the model it fitted, the one
`handoff train` fits on the same mirror; a dry run trains alike and keeps nothing; a model once
promoted is not fitted again by later runs. When a run trains is `training_due`'s call, tested
on both backends against the counts it gates on.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from rich.console import Console
from sqlmodel import col, select

from handoff.reports import print_run_summary
from handoff.runs import run_config, scoring_setup
from handoff.settings import Settings
from sandbox.generator import generate_org
from sandbox.org import Org
from scoring.model import RulesModel
from scoring.training import Training
from sync import Store, account_signals
from sync.frames import ReadApart
from sync.run import run_sync
from sync.runlog import summarise
from sync.scoring_state import ScoringSetup, keep_training, train_model, training_due
from sync.state import (
    Account,
    Opportunity,
    Person,
    ScoringModelRow,
    ScoringState,
    SyncRun,
)
from tests.conftest import copy_template
from tests.test_sync_run import Crm, _open, _pushes

ACCOUNTS = 2_000  # the demo's org: history enough for a model the holdout promotes
NOW = datetime(2026, 12, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
def org() -> Org:
    return generate_org(ACCOUNTS, 7)  # the demo's seed (seed 5's candidate is kept aside)


@pytest.fixture
def hubspot(org: Org) -> Iterator[Crm]:
    with ExitStack() as stack:
        yield _open(stack, "hubspot", org)


@pytest.fixture
def state(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Store]:
    with Store.open(copy_template(request, tmp_path / "state.db")) as opened:
        yield opened


def _models(store: Store) -> list[ScoringModelRow]:
    with store.session() as session:
        return list(session.exec(select(ScoringModelRow)))


def test_the_first_run_trains_promotes_and_scores_with_its_model(
    hubspot: Crm, state: Store
) -> None:
    first = hubspot.run(state)
    assert first.outcome == "ok", first.error
    assert first.promoted and first.trained is not None and "replaces rules-" in first.trained
    assert first.model_kind == "predictive" and first.model_reason is not None
    assert first.model_reason.startswith("trained this run: ")
    assert list(first.stages)[:4] == ["mirror", "link", "train", "score"]
    assert first.train_seconds is not None and 0 < first.train_seconds <= first.stages["train"]
    (kept,) = _models(state)
    assert kept.promoted and kept.version == first.model_version and kept.changelog
    # what the CRM shows is the model's: read back through the connector, as a rep sees it
    with state.session() as session:
        ids = list(session.exec(select(Account.id).limit(20)))
        logged = session.exec(select(SyncRun).where(SyncRun.id == first.run_id)).one()
        orphans = list(
            session.exec(select(Person.id).where(col(Person.orphan_reason).is_not(None)).limit(20))
        )
    shown = hubspot.shown(hubspot.accounts, ids)
    assert {values["model_version"] for values in shown.values()} == {kept.version}
    # the leads without an account too, scored on their own by the model the run trained
    assert orphans and first.orphans_scored
    shown = hubspot.shown(hubspot.people, orphans)
    assert {values["model_version"] for values in shown.values()} == {kept.version}
    assert logged.counts["trained"] == 1 and logged.counts["promoted"] == 1
    console = Console(record=True, width=120)
    print_run_summary(console, summarise(logged), [])  # `handoff logs RUN`
    logged_text = console.export_text()
    assert "Trained:" not in logged_text  # the model line says it: not said twice
    assert f"Model:      trained this run: {kept.version} replaces rules-" in logged_text
    # `handoff train` on the same mirror at the same moment learns the same points (the history
    # read once for the score stage is the history training reads on its own), and says so: the
    # model that scores is no candidate against itself, so it is not kept aside in its own place
    for _ in range(2):
        with state.session() as session:
            again = train_model(session, _setup(), first.started_at)  # the run's `now`
        assert again.candidate is None and not again.promoted
        assert again.reason.startswith(f"{kept.version} still scores: trained again, it learned")
        assert [(m.version, m.promoted) for m in _models(state)] == [(kept.version, True)]
    # a promoted model is not fitted again: the rerun, then a full run, keep it and write nothing
    pushes = _pushes(hubspot)
    rerun = hubspot.run(state)
    full = hubspot.run(state, full=True)
    for later in (rerun, full):
        assert later.trained is None and later.train_seconds is None
        assert later.model_version == kept.version and sum(later.written.values()) == 0
    assert _pushes(hubspot) == pushes and len(_models(state)) == 1
    # `[scoring] model = "rules"` has the rules score though a model is promoted, which stays
    # kept and scores again once the settings let it
    rules = run_config(Settings(scoring={"model": "rules"}))
    back = run_sync(rules, hubspot.connector, state, hubspot.time.now)
    assert back.model_kind == "rules" and back.model_version.startswith("rules-")
    assert (
        back.model_reason == f"the rules model {back.model_version} scores: [scoring] model = rules"
    )
    assert back.rescored_all and back.written  # another model: every account rescored, rewritten
    shown = hubspot.shown(hubspot.accounts, ids)
    assert {values["model_version"] for values in shown.values()} == {back.model_version}
    again = hubspot.run(state)
    assert again.model_kind == "predictive" and again.model_version == kept.version
    assert [(m.version, m.promoted) for m in _models(state)] == [(kept.version, True)]


def test_a_dry_run_trains_as_the_run_would_and_keeps_nothing(hubspot: Crm, state: Store) -> None:
    now = hubspot.time.now  # both runs at one moment: the model learns as of it, to the second
    dry = run_sync(run_config(Settings()), hubspot.connector, state, now, dry_run=True)
    assert dry.promoted and dry.model_kind == "predictive" and dry.planned > 0
    assert {row["score"] for row in dry.sample} and _pushes(hubspot) == 0
    assert dry.model_reason is not None and dry.model_reason.startswith(
        "trained this run (a dry run: not kept): "
    )
    assert _models(state) == []
    with state.session() as session:
        assert session.get(ScoringState, 1) is None  # nothing scored was kept either
        logged = session.exec(select(SyncRun).where(SyncRun.id == dry.run_id)).one()
    assert "trained" not in logged.counts  # the run log says no model was kept
    real = run_sync(run_config(Settings()), hubspot.connector, state, now)
    assert real.model_version == dry.model_version and real.planned == dry.planned
    assert sum(real.written.values()) == dry.planned


def test_the_rules_setting_keeps_the_first_run_from_training(hubspot: Crm, state: Store) -> None:
    config = run_config(Settings(scoring={"model": "rules"}))
    report = run_sync(config, hubspot.connector, state, hubspot.time.now)
    assert report.trained is None and "train" in report.stages
    assert report.model_kind == "rules" and _models(state) == []


def _setup(**scoring: Any) -> ScoringSetup:
    return scoring_setup(Settings(scoring=scoring))


def _mirror(store: Store, accounts: int, opportunities: int, deleted: int = 0) -> None:
    """``accounts`` live accounts and ``deleted`` more; ``opportunities`` opened ones, the
    first ``deleted`` of them deleted, and one never opened."""
    mirrored = {"crm_modified_at": NOW, "synced_at": NOW}
    with store.session() as session:
        store.upsert(
            session,
            Account,
            [
                {"id": f"a{n}", "name": f"A{n}", "is_deleted": n < deleted, **mirrored}
                for n in range(accounts + deleted)
            ],
        )
        opened = {"opened_at": NOW, "account_id": "a0", **mirrored}
        store.upsert(
            session,
            Opportunity,
            [{"id": f"o{n}", "is_deleted": n < deleted, **opened} for n in range(opportunities)]
            + [{"id": "unopened", "is_deleted": False, **mirrored}],
        )


def test_a_run_trains_when_the_mirror_holds_what_training_needs_at_least(store: Store) -> None:
    enough = _setup(min_training_accounts=5, min_training_conversions=3)
    _mirror(store, accounts=5, opportunities=3, deleted=2)  # 2 of each deleted: not counted
    with store.session() as session:
        due, why = training_due(session, enough, full=False)
    assert not due and why == (
        "the mirror holds 5 accounts and 1 opportunity, where training needs at least 5 "
        "accounts and 3 qualified opportunities to learn from"
    )
    _mirror(store, accounts=5, opportunities=5, deleted=2)
    with store.session() as session:

        def due(setup: ScoringSetup, *, full: bool) -> bool:
            return training_due(session, setup, full=full)[0]

        assert due(enough, full=False)  # the first run: nothing scored yet
        assert not due(_setup(min_training_accounts=6), full=True)
        assert not due(_setup(min_training_conversions=4), full=True)
        assert training_due(session, _setup(model="rules"), full=True) == (False, None)
        assert due(_setup(model="predictive"), full=True)  # no minimums
        session.add(
            ScoringState(catalog="c", model_version="v", seq=1, scored_at=NOW, nightly_at=NOW)
        )
        session.flush()
        assert not due(enough, full=False)  # a cycle rebuilds no account
        assert due(enough, full=True)  # a full run rebuilds every one
        session.add(ScoringModelRow(version="kept", created_at=NOW, document="{}", promoted=False))
        session.flush()
        assert due(enough, full=True)  # kept aside: tried again
        session.add(ScoringModelRow(version="p", created_at=NOW, document="{}", promoted=True))
        session.flush()
        assert not due(enough, full=True)  # promoted: `handoff train` refits
        session.rollback()


def test_a_first_run_with_too_little_history_says_why_it_did_not_train(state: Store) -> None:
    small = generate_org(120, 7)
    with ExitStack() as stack:
        crm = _open(stack, "hubspot", small)
        report = crm.run(state)
    assert report.trained is None and report.model_kind == "rules"
    assert report.model_reason is not None and report.model_reason.endswith(
        "; not trained: the mirror holds 120 accounts and "
        f"{report.pulled['deals']['stored']} opportunities, where training needs at least "
        "1,000 accounts and 120 qualified opportunities to learn from"
    )


def test_a_kept_version_is_promoted_by_a_training_that_promotes_it_and_never_demoted(
    state: Store,
) -> None:
    def training(version: str, promoted: bool) -> Training:
        """A training's outcome as `keep_training` reads it (a candidate's version, document
        and changelog)."""
        candidate: Any = SimpleNamespace(version=version, to_json=lambda: "{}", changelog_=["c"])
        return Training(RulesModel(_setup().catalog, ()), candidate, promoted, "why", None)

    with state.session() as session:
        keep_training(session, training("v", promoted=False), NOW)
        keep_training(session, training("v", promoted=True), NOW + timedelta(hours=1))
        keep_training(session, training("v", promoted=False), NOW + timedelta(hours=2))
    (kept,) = _models(state)
    assert kept.promoted and kept.created_at == NOW + timedelta(hours=1)


def test_a_candidate_kept_aside_is_kept_and_the_rules_score(state: Store) -> None:
    with ExitStack() as stack:
        crm = _open(stack, "hubspot", generate_org(ACCOUNTS, 5))  # its candidate is refused
        report = crm.run(state)
    assert report.trained is not None and not report.promoted and report.model_kind == "rules"
    assert "kept aside, rules-" in report.trained and "calibration error" in report.trained
    (kept,) = _models(state)
    assert not kept.promoted and kept.reason == report.trained
    with state.session() as session:
        logged = session.exec(select(SyncRun).where(SyncRun.id == report.run_id)).one()
    console = Console(record=True, width=120)
    print_run_summary(console, summarise(logged), [])
    assert "Trained:    the predictive model, kept aside: `handoff score` says why" in (
        console.export_text()
    )


def test_a_train_stage_that_fails_gives_up_the_history_read_and_keeps_nothing(
    hubspot: Crm, state: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(account_signals, "_APART_ROWS", 1)  # the org's history read apart
    started: list[ReadApart] = []
    cancelled: list[ReadApart] = []
    start, cancel = ReadApart.start, ReadApart.cancel

    def starting(*args: Any, **kwargs: Any) -> ReadApart | None:
        read = start(*args, **kwargs)
        started.extend([read] if read is not None else [])
        return read

    def cancelling(self: ReadApart) -> None:
        cancelled.append(self)
        cancel(self)

    def failing(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("the links could not be read")

    monkeypatch.setattr(ReadApart, "start", staticmethod(starting))
    monkeypatch.setattr(ReadApart, "cancel", cancelling)
    monkeypatch.setattr(account_signals, "every_activity", failing)
    with pytest.raises(RuntimeError, match="the links could not be read"):
        hubspot.run(state)
    assert len(started) == 1 and cancelled == started
    assert _models(state) == []
    with state.session() as session:
        (run,) = session.exec(select(SyncRun))
    assert run.status == "failed" and "trained" not in run.counts
    assert "the links could not be read" in (run.error or "")
