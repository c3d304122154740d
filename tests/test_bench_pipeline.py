"""The end-to-end benchmark's goals: a cycle with nothing new may read once a stream, plus the
archive checks that fall due in it, as the saved cursors say."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from bench.pipeline import _archive_reads, _goals
from sync.store import Store

AT = datetime(2026, 11, 1, 9, tzinfo=UTC)


def _figures(**given: Any) -> dict[str, Any]:
    return {
        "write_calls": 10,
        "write_floor": 10,
        "rerun_writes": 0,
        "incremental_local_seconds": 0.5,
        "first_run_local_seconds": 100,
        "peak_rss_mb": 1000,
        "mirror": {"missing": True},
        "bench_model": None,
        "auc_ratio": None,
    } | given


def test_a_cycle_may_read_once_a_stream_and_once_more_for_each_archive_check_due() -> None:
    assert _goals(_figures(nochange_api_calls=11, nochange_archive_checks=0), 11)[
        "nochange_api_calls"
    ]
    assert not _goals(_figures(nochange_api_calls=12, nochange_archive_checks=0), 11)[
        "nochange_api_calls"
    ]
    assert _goals(_figures(nochange_api_calls=12, nochange_archive_checks=1), 11)[
        "nochange_api_calls"
    ]
    assert not _goals(_figures(nochange_api_calls=13, nochange_archive_checks=1), 11)[
        "nochange_api_calls"
    ]


def test_the_archive_reads_are_those_the_saved_cursors_hold(tmp_path: Any) -> None:
    with Store.open(f"sqlite:///{tmp_path / 'state.db'}") as store:
        with store.session() as session:
            store.set_cursor(session, "hubspot", "owners", AT, [], AT, archive_read_at=AT)
            store.set_cursor(session, "hubspot", "companies", AT, ["51"], AT)
            store.set_cursor(session, "salesforce", "Account", AT, [], AT, archive_read_at=AT)

        assert _archive_reads(store, "hubspot") == {"owners": AT, "companies": None}
