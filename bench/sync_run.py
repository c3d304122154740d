"""Benchmark: the sync run, CRM to CRM, on a generated org served by the in-process sandbox.

    python -m bench.sync_run --crm salesforce --accounts 2000 [--database URL]

Three runs at the world's end: the first (full load, every record written), a second (it re-reads
the records the first wrote, since a write moves their modification time, and writes nothing),
and a third with nothing new at all. Times include the sandbox answering in the same process
(its serving time is not taken out), so they are an upper bound of the run's own work.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from bench.common import emit, peak_rss_mb, progress, timed
from connectors.config import HubSpotSettings, SalesforceSettings
from connectors.hubspot import HubSpotConnector
from connectors.protocol import Connector, SchemaSpec
from connectors.salesforce import SalesforceConnector
from sandbox.generator import generate_org
from sandbox.salesforce import SalesforceOptions, client_session
from sandbox.service import RunningSandbox, start_sandbox
from scoring.config import (
    DEFAULT_DISQUALIFIERS,
    DEFAULT_FIT,
    DEFAULT_SIGNALS,
    ModelSettings,
    TierSettings,
)
from sync.config import MatchingSettings
from sync.run import RunConfig, RunReport, run_sync
from sync.scoring_state import ScoringSetup
from sync.store import Store

SPEC = SchemaSpec(("Nurture", "SDR", "AE", "Disqualified"), ("No Budget", "Other"))
# the default settings' run (the shell builds the same from `Settings`)
CONFIG = RunConfig(
    ScoringSetup(
        TierSettings(), ModelSettings(), DEFAULT_SIGNALS, DEFAULT_FIT, DEFAULT_DISQUALIFIERS
    ),
    MatchingSettings(),
)


def _connector(running: RunningSandbox) -> Connector:
    """The real connector on the sandbox's route."""
    if running.crm == "hubspot":
        settings = HubSpotSettings(token=SecretStr(running.token))
        return HubSpotConnector(settings, host=running.base_url)
    options = SalesforceOptions()
    salesforce = SalesforceSettings(
        auth="client_credentials",
        instance_url=options.instance_url,
        client_id=options.consumer_key,
        client_secret=SecretStr(options.consumer_secret),
    )
    return SalesforceConnector(salesforce, session=client_session(running.base_url))


def _figures(report: RunReport, seconds: float) -> dict[str, Any]:
    return {
        "seconds": round(seconds, 2),
        "stages": {name: round(s, 2) for name, s in report.stages.items()},
        "written": sum(report.written.values()),
        "accounts_scored": report.scored,
        "people_linked": report.link.people,
        "orphans_scored": report.orphans_scored,
        "orphans_written": report.orphans_written,
        "api_calls": report.api_calls,
        "outcome": report.outcome,
    }


def main() -> None:
    """Run the benchmark and print its figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--crm", choices=("salesforce", "hubspot"), default="salesforce")
    parser.add_argument("--accounts", type=int, default=2_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--database", help="state database URL (default: a fresh SQLite file)")
    args = parser.parse_args()
    progress(f"generating an org of {args.accounts:,} accounts")
    org = generate_org(args.accounts, args.seed)
    options = {"tier": "unlimited"} if args.crm == "hubspot" else {}
    with tempfile.TemporaryDirectory() as folder, start_sandbox(args.crm, org, **options) as crm:
        url = args.database or f"sqlite:///{Path(folder) / 'state.db'}"
        connector = _connector(crm)
        connector.ensure_schema(SPEC)
        runs = {}
        with Store.open(url) as store:
            for name in ("first_run", "rerun", "nochange_run"):
                progress(name)
                with timed() as seconds:
                    report = run_sync(CONFIG, connector, store, org.manifest.end_at)
                runs[name] = _figures(report, seconds[0])
    emit({"crm": args.crm, "accounts": args.accounts, **runs, "peak_rss_mb": peak_rss_mb()})


if __name__ == "__main__":
    main()
