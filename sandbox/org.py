"""A generated org: CRM-visible tables, its hidden ground truth, and their files on disk."""

from __future__ import annotations

import json
import zlib
from dataclasses import asdict, dataclass, fields
from datetime import datetime
from pathlib import Path

import polars as pl

from sandbox.truth import GroundTruth
from sandbox.vocab import FREEMAIL_DOMAINS
from sandbox.world import WorldParams

__all__ = [
    "FORMAT_VERSION",
    "Org",
    "OrgError",
    "OrgManifest",
    "load_org",
    "non_ascii_share",
    "org_number",
    "personal_email_share",
    "read_manifest",
    "save_org",
]

FORMAT_VERSION = 2  # 2: the manifest records the world (preset and parameters)
_TABLES = ("accounts", "people", "users", "activities", "opportunities", "dispositions")
_TRUTH_TABLES = ("people", "accounts", "bursts")


class OrgError(Exception):
    """An org directory is missing, incomplete or written by another format version."""


@dataclass(frozen=True)
class OrgManifest:
    """How an org was made: enough to make it again, identically."""

    format_version: int
    seed: int
    accounts: int
    people_per_account: float
    activities_per_account: float
    end: str  # ISO 8601 UTC: the org's "now"
    preset: str  # the world preset the parameters started from (``sandbox.world``)
    world: dict[str, float]  # every world parameter, overrides included

    @property
    def world_params(self) -> WorldParams:
        """The world this org was generated in."""
        return WorldParams(**self.world, preset=self.preset)

    @property
    def end_at(self) -> datetime:
        """The org's "now" as an aware datetime."""
        return datetime.fromisoformat(self.end)


def org_number(manifest: OrgManifest) -> int:
    """A number telling orgs apart by how they were made (seed, size, world preset): both
    sandboxes derive the org's own id from it (Salesforce's Organization Id, HubSpot's Hub ID),
    so a state database synced against one org refuses another."""
    made = f"{manifest.seed}:{manifest.accounts}:{manifest.preset}".encode()
    return zlib.crc32(made)


@dataclass(frozen=True)
class Org:
    """A synthetic CRM org. ``truth`` is for evaluation code only, never for the product."""

    manifest: OrgManifest
    accounts: pl.DataFrame
    people: pl.DataFrame
    users: pl.DataFrame
    activities: pl.DataFrame
    opportunities: pl.DataFrame
    dispositions: pl.DataFrame
    truth: GroundTruth

    def counts(self) -> dict[str, int]:
        """Rows per CRM-visible table."""
        return {name: getattr(self, name).height for name in _TABLES}

    def summary(self) -> dict[str, float | int]:
        """Counts and the shares that make the org realistic (what a reviewer checks first)."""
        people, accounts = self.people, self.accounts
        leads = people.filter(pl.col("kind") == "lead")
        truth = self.truth.people.join(people.select("person_id", "kind"), on="person_id")
        orphan_leads = truth.filter(
            (pl.col("kind") == "lead") & pl.col("true_account_id").is_null()
        )
        return {
            **self.counts(),
            "leads": leads.height,
            "contacts": people.height - leads.height,
            "personal_email_share": round(personal_email_share(people), 4),
            "orphan_lead_share": round(orphan_leads.height / max(leads.height, 1), 4),
            "subsidiary_share": round(accounts["parent_id"].is_not_null().mean() or 0.0, 4),
            "unicode_account_share": round(non_ascii_share(accounts["name"]), 4),
            "unicode_people_share": round(
                non_ascii_share(people["last_name"] + people["first_name"]), 4
            ),
            "converted_lead_share": round(leads["is_converted"].mean() or 0.0, 4),
            "won_opportunities": int(self.opportunities["is_won"].sum()),
        }


def personal_email_share(people: pl.DataFrame) -> float:
    """Share of people with an email whose domain is a free-mail provider."""
    emails = people["email"].drop_nulls().str.to_lowercase()
    domain = emails.str.split("@").list.last()
    return float(domain.is_in(list(FREEMAIL_DOMAINS)).mean() or 0.0)


def non_ascii_share(values: pl.Series) -> float:
    """Share of non-null strings with at least one non-ASCII character."""
    present = values.drop_nulls()
    return float(present.str.contains(r"[^\x00-\x7F]").mean() or 0.0)


def save_org(org: Org, path: Path) -> None:
    """Write an org as Parquet tables plus a manifest; the truth goes to ``truth/``."""
    (path / "truth").mkdir(parents=True, exist_ok=True)
    for name in _TABLES:
        getattr(org, name).write_parquet(path / f"{name}.parquet")
    for name in _TRUTH_TABLES:
        getattr(org.truth, name).write_parquet(path / "truth" / f"{name}.parquet")
    (path / "manifest.json").write_text(json.dumps(asdict(org.manifest), indent=2) + "\n")


def load_org(path: Path) -> Org:
    """Read an org written by ``save_org``; refuse other format versions."""
    manifest = read_manifest(path)
    tables = {name: _read(path / f"{name}.parquet") for name in _TABLES}
    truth = GroundTruth(
        **{name: _read(path / "truth" / f"{name}.parquet") for name in _TRUTH_TABLES},
        process=manifest.world_params.process,
    )
    return Org(manifest=manifest, truth=truth, **tables)


def read_manifest(path: Path) -> OrgManifest:
    """The manifest of an org written by ``save_org``; refuse other format versions."""
    manifest_file = path / "manifest.json"
    if not manifest_file.is_file():
        raise OrgError(
            f"{path}: not a generated org (no manifest.json); create one with "
            "`handoff sandbox generate --out {path}`"
        )
    raw = json.loads(manifest_file.read_text())
    if raw.get("format_version") != FORMAT_VERSION:
        raise OrgError(
            f"{path}: org format {raw.get('format_version')} but this version reads "
            f"format {FORMAT_VERSION}; generate it again"
        )
    return OrgManifest(**{f.name: raw[f.name] for f in fields(OrgManifest)})


def _read(file: Path) -> pl.DataFrame:
    """One table, with a clear error when the org is incomplete."""
    if not file.is_file():
        raise OrgError(f"{file}: missing; the org directory is incomplete, generate it again")
    return pl.read_parquet(file)
