"""`handoff logs`, `explain` and `score` as RevOps reads them, from the state database alone.

One module-wide state database is filled by two real sync runs against an in-process HubSpot
sandbox (real client library over loopback HTTP), sharing the world's present as their start
time: the first run's write of one company fails (it was deleted in the CRM just before the
push), and between the runs two companies are merged. The commands then run in process.
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from rich.console import Console
from sqlmodel import col, func, select

from connectors.protocol import Connector, Update, WriteResult
from handoff.crm import open_crm, schema_spec
from handoff.progress import StageProgress
from handoff.runs import run_config, scoring_setup
from handoff.settings import Settings
from sync import Store
from sync.explain import AmbiguousAccount, explain_account, find_account
from sync.run import RunReport, run_sync
from sync.runlog import runs_newest_first
from sync.state import Account, CurrentScore, Person, RunEvent
from tests.cli_fixtures import run_cli
from tests.sandbox_fixtures import hubspot_client, sandbox_settings

pytestmark = pytest.mark.usefixtures("isolated_cli")

ACCOUNTS = 40


@dataclass
class Synced:
    """The state database two runs left, and what happened in them."""

    settings_path: str
    settings: Settings
    first: RunReport
    second: RunReport
    deleted: str  # the company deleted in the CRM just before the first run's push
    survivor: str  # the company another was merged into between the runs
    loser: str


class _DeletingBeforePush:
    """The real connector; the CRM loses one company between our read and our first write."""

    def __init__(self, inner: Connector, delete: str, crm: object) -> None:
        self._inner, self._delete, self._crm = inner, delete, crm

    def __getattr__(self, name: str) -> object:
        return getattr(self._inner, name)

    def push_together(self, groups: list[tuple[str, list[Update]]]) -> list[list[WriteResult]]:
        if self._delete:
            hubspot_client(self._crm).crm.companies.basic_api.archive(self._delete)  # type: ignore[arg-type]
            self._delete = ""
        return self._inner.push_together(groups)


@pytest.fixture(scope="module")
def synced(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Synced]:
    directory = tmp_path_factory.mktemp("runs")
    settings = sandbox_settings(directory, "hubspot", ACCOUNTS, seed=11)
    with (
        Store.open(settings.state.database_url) as store,
        open_crm(settings, in_process=True) as crm,
    ):
        crm.connector.ensure_schema(schema_spec(settings))
        now = crm.now()
        companies = sorted(str(c.id) for c in hubspot_client(crm.sandbox).crm.companies.get_all())
        deleting = _DeletingBeforePush(crm.connector, companies[0], crm.sandbox)
        first = run_sync(run_config(settings), deleting, store, now)  # type: ignore[arg-type]
        body = {"primaryObjectId": companies[1], "objectIdToMerge": companies[2]}
        survivor = str(hubspot_client(crm.sandbox).crm.companies.basic_api.merge(body).id)
        second = run_sync(run_config(settings), crm.connector, store, now)
        _add_orphans(store, survivor)
    yield Synced(
        str(directory / "settings.toml"),
        settings,
        first,
        second,
        companies[0],
        survivor,
        companies[2],
    )


def _add_orphans(store: Store, account_id: str) -> None:
    """Two orphans: one whose company is the account's name with a typo, one far from it."""
    with store.session() as session:
        account = session.get(Account, account_id)
        assert account is not None
        typo = account.name[:2] + ("q" if account.name[2] != "q" else "z") + account.name[3:]
        at = datetime(2026, 1, 1, tzinfo=UTC)
        for person_id, company in (("orphan-near", typo), ("orphan-far", "Zzyzx Quarries")):
            session.add(
                Person(
                    id=person_id, kind="lead", email=f"{person_id}@gmail.com", company=company,
                    orphan_reason="company_not_in_crm", crm_modified_at=at, synced_at=at,
                )
            )  # fmt: skip


def _cli(synced: Synced, *args: str) -> tuple[int, str]:
    return run_cli(*args, "--settings", synced.settings_path)


def test_the_runs_say_why_the_first_was_full_and_the_second_not(synced: Synced) -> None:
    assert synced.first.full_reason == "no full re-pull has completed yet"
    assert synced.first.outcome == "partial"
    assert not synced.second.full and synced.second.full_reason is None
    assert synced.first.model_reason and "cold start" in synced.first.model_reason


def test_logs_list_runs_sharing_a_start_time_newest_first(synced: Synced) -> None:
    code, listed = _cli(synced, "logs")
    json_code, lines = _cli(synced, "logs", "--json")
    runs = [json.loads(line) for line in lines.splitlines()]

    assert code == 0 and "Sync runs (hubspot), newest first" in listed  # the CRM named
    assert "…" not in listed  # every figure whole at 80 columns
    ids = (synced.second.run_id[:8], synced.first.run_id[:8])
    rows = [line.split() for line in listed.splitlines() if line.strip()[:8] in ids]
    assert [row[0] for row in rows] == list(ids)
    assert "partial, full" in " ".join(rows[1])
    assert json_code == 0
    assert [r["run"] for r in runs] == [synced.second.run_id, synced.first.run_id]
    assert runs[0]["started_at"] == runs[1]["started_at"]  # one simulated present
    first = runs[1]
    assert first["outcome"] == "partial" and first["full"] is True
    assert first["pulled"]["companies"]["records"] == ACCOUNTS
    assert first["failed"] == 1 and first["written"]["companies"] == ACCOUNTS - 1
    assert set(first["seconds"]) >= {"mirror", "link", "score", "write"}


def test_one_run_reads_in_words_with_its_failure(synced: Synced) -> None:
    code, shown = _cli(synced, "logs", synced.first.run_id[:10])

    assert code == 0, shown
    assert re.match(rf"Run {synced.first.run_id} \(hubspot org \d{{8}}\), started ", shown)
    assert f"companies {ACCOUNTS} (" in shown and "calls)" in shown
    for label in ("Full:", "Pulled:", "People:", "Scored:", "Tiers:", "Written:", "API calls:"):
        assert label in shown, label
    assert "review queue" in shown and "orphans" in shown and "moved up" in shown
    assert f"(companies {ACCOUNTS - 1}, contacts" in shown and "1 failed" in shown
    orphans = synced.first.orphans_scored, synced.first.orphans_written
    scored = f"{ACCOUNTS} accounts, {orphans[0]} people without an account (orphans, and people for"
    assert scored in " ".join(shown.split())  # both of the Linked line's kinds, said so
    assert f"; {orphans[1]} people without an account)" in " ".join(shown.split())
    assert orphans[1] > 0
    assert "Failed records" in shown and synced.deleted in shown and "OBJECT_NOT_FOUND" in shown
    assert "ms." not in shown and "pulled." not in shown and "tier_up" not in shown


def test_one_run_exports_its_events_as_json_lines(synced: Synced) -> None:
    code, lines = _cli(synced, "logs", synced.first.run_id, "--json")
    events = [json.loads(line) for line in lines.splitlines()]

    assert code == 0
    assert {e["run_id"] for e in events} == {synced.first.run_id}
    failed = [e for e in events if e["action"] == "failed"]
    assert [(e["record_id"], e["reason"]) for e in failed] == [(synced.deleted, "OBJECT_NOT_FOUND")]
    assert sum(e["action"] == "written" for e in events) == synced.first.counts()["written"]


def test_a_missing_run_says_so(synced: Synced) -> None:
    code, output = _cli(synced, "logs", "nope")
    assert code == 1 and "no sync run 'nope'" in output


def test_explain_shows_the_score_its_reasons_merged_history_and_people(synced: Synced) -> None:
    code, shown = _cli(synced, "explain", synced.survivor)
    with Store.open(synced.settings.state.database_url) as store, store.session() as session:
        current = session.get(CurrentScore, synced.survivor)
        account = session.get(Account, synced.survivor)
        linked = session.exec(
            select(func.count()).where(Person.matched_account_id == synced.survivor)
        ).one()

    assert code == 0, shown
    assert current is not None and account is not None
    assert f"Score {int(current.score)} (" in shown and current.model_version in shown
    assert "cold start" in shown
    assert "Why this score" in shown and "Score history" in shown
    assert f"merged from {synced.loser}" in shown  # the loser's history follows it
    assert f"Linked people ({linked})" in shown
    assert "Nearby orphans (1): orphans the matcher" in shown and "orphan-near" in shown
    assert "orphan-far" not in shown


def test_explain_finds_an_account_by_domain_name_or_merged_id(synced: Synced) -> None:
    with Store.open(synced.settings.state.database_url) as store, store.session() as session:
        account = session.get(Account, synced.survivor)
        assert account is not None and account.domain
        by_domain = find_account(session, f"https://www.{account.domain}/")
        by_name = find_account(session, account.name.upper())
        by_loser = find_account(session, synced.loser)
        with pytest.raises(AmbiguousAccount) as ambiguous:
            find_account(session, "e")
        named_e = session.exec(
            select(func.count()).where(
                func.lower(Account.name).contains("e"), col(Account.is_deleted).is_(False)
            )
        ).one()
    assert by_domain.id == by_name.id == by_loser.id == synced.survivor
    assert "was deleted in the CRM" in _cli(synced, "explain", synced.deleted)[1]
    # the first ten are listed, and the rest said to exist
    assert named_e > 10 and len(ambiguous.value.candidates) == 10 and ambiguous.value.more
    assert "and more: a longer part of the name narrows them" in _cli(synced, "explain", "e")[1]


def test_explain_names_the_candidates_of_an_ambiguous_name_and_an_unknown_one(
    synced: Synced,
) -> None:
    ambiguous_code, ambiguous = _cli(synced, "explain", "e")
    unknown_code, unknown = _cli(synced, "explain", "no-such-company-anywhere")

    assert ambiguous_code == 1 and "matches more than one account" in ambiguous
    assert len([line for line in ambiguous.splitlines() if line.startswith("  ")]) > 1
    assert unknown_code == 1
    assert "no account has the id, domain or name 'no-such-company-anywhere'" in unknown


def test_explain_needs_no_crm_and_matches_the_run(synced: Synced) -> None:
    with Store.open(synced.settings.state.database_url) as store, store.session() as session:
        found = explain_account(
            session, scoring_setup(synced.settings), synced.settings.matching,
            synced.survivor, datetime.now(UTC),
        )  # fmt: skip
        current = session.get(CurrentScore, synced.survivor)
    assert current is not None
    assert (found.score, found.tier, found.model_version) == (
        current.score, current.tier, current.model_version
    )  # fmt: skip
    assert found.contributions and all(c.sentence for c in found.contributions)
    labels = {synced.settings.tiers.nurture_label, synced.settings.tiers.sdr_label,
              synced.settings.tiers.ae_label, synced.settings.tiers.disqualified_label}  # fmt: skip
    assert found.history and {entry.tier for entry in found.history} <= labels
    assert [o.id for o in found.nearby_orphans] == ["orphan-near"]
    assert found.nearby_orphans[0].rule == "similar_name"


def test_score_tiers_the_mirror_as_the_run_did_and_says_which_model(synced: Synced) -> None:
    code, shown = _cli(synced, "score", "--top", "5")
    with Store.open(synced.settings.state.database_url) as store, store.session() as session:
        best = session.exec(
            select(CurrentScore.account_id)
            .order_by(col(CurrentScore.score).desc(), col(CurrentScore.account_id))
            .limit(1)
        ).one()

    assert code == 0, shown
    assert f"Tiers: {_tiers(synced.second)}" in shown
    assert "nothing pulled or written" in shown and "cold start" in shown
    assert "Top 5 accounts" in shown and best in shown


def _tiers(report: RunReport) -> str:
    return ", ".join(f"{label} {n:,}" for label, n in report.tiers.items())


def test_sync_help_documents_the_exit_codes() -> None:
    code, shown = run_cli("sync", "--help")
    assert code == 0
    for phrase in ("0 ok", "1 failed", "bad settings", "2 partial", "3 stopped by the API",
                   "4 locked", "every [sync] full_resync_hours"):  # fmt: skip
        assert phrase in " ".join(shown.split()), phrase
    # plain help: a flag shows no type beside it, a paragraph is wrapped whole
    assert "<bool>" not in shown and "\\[" not in shown
    assert "completed yet, or every [sync] full_resync_hours" in shown


def test_a_run_deletes_events_past_their_retention_and_keeps_every_summary(
    tmp_path: Path,
) -> None:
    settings = Settings.model_validate(
        {
            "sandbox": {"crm": "hubspot", "accounts": 15, "seed": 3},
            "state": {"database_url": f"sqlite:///{tmp_path / 'state.db'}"},
            "sync": {"event_retention_days": 30},
        }
    )
    with (
        Store.open(settings.state.database_url) as store,
        open_crm(settings, in_process=True) as crm,
    ):
        crm.connector.ensure_schema(schema_spec(settings))
        now = crm.now()
        old = run_sync(run_config(settings), crm.connector, store, now - timedelta(days=31))
        with store.session() as session:
            logged = session.exec(select(func.count()).where(RunEvent.run_id == old.run_id)).one()
        new = run_sync(run_config(settings), crm.connector, store, now)
        with store.session() as session:
            kept = session.exec(select(func.count()).where(RunEvent.run_id == old.run_id)).one()
            runs = [run.id for run in runs_newest_first(session, 10)]

    assert logged > 0 and kept == 0
    assert new.events_forgotten == logged and new.counts()["events_forgotten"] == logged
    assert runs == [new.run_id, old.run_id]  # run summaries are kept


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize("terminal", [False, True])
def test_progress_shows_only_stages_over_a_second(terminal: bool) -> None:
    out, clock = io.StringIO(), _Clock()
    console = Console(file=out, force_terminal=terminal, width=100)
    with StageProgress(console, clock=clock) as progress:
        progress("link", 1, 1)  # done at once: never shown
        for done in range(8):
            progress("mirror", done, 7)
            clock.now += 0.5
    text = out.getvalue()

    assert "link" not in text
    if terminal:
        assert "7/7" in text  # a bar with counts, redrawn in place
    else:
        assert text.splitlines() == ["mirror: 2 of 7", "mirror: 7 of 7"]
