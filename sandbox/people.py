"""Leads and contacts of the synthetic org, with the dirt that makes lead-to-account matching hard.

Every person truly works for one company: a CRM account, or (for ~8%) a company that is not in
the CRM at all. What the CRM shows is noisier: personal email addresses, company strings with other
suffixes, typos, acronyms or nothing, duplicates, missing fields and a few existing links.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from sandbox.draw import gather, pick, pick_within
from sandbox.reps import MARKETING_QUEUE_ID, owners_in_region
from sandbox.vocab import (
    COUNTRIES,
    FIRST_NAMES,
    FREEMAIL_DOMAINS,
    JUNK_COMPANIES,
    LAST_NAMES,
    TITLES,
)

__all__ = ["PERSONAL_EMAIL_SHARE", "make_people"]

DAY = 86_400
ORPHAN_SHARE = 0.08
DUPLICATE_SHARE = 0.02
PERSONAL_EMAIL_SHARE = 0.15
CONTACT_SHARE = 0.40
_COMPANY_FORMS = (  # how a person writes their employer: (form, weight)
    ("exact", 33),
    ("base", 15),
    ("other_suffix", 7),
    ("upper", 5),
    ("lower", 5),
    ("typo", 7),
    ("acronym", 4),
    ("spacing", 5),
    ("latin", 4),
    ("parent", 3),
    ("short", 4),
    ("empty", 6),
    ("junk", 2),
)
_GENERIC_SUFFIXES = ("Inc", "Inc.", ", Inc.", "Ltd", "LLC", "GmbH", "Co.", "Corp", "Limited")
_FREEMAIL_WEIGHTS = (40, 12, 12, 8, 6, 2, 3, 2, 2, 2, 2, 2, 2, 2, 2, 2)
_LEAD_SOURCES = ("Web", "Webinar", "Trade Show", "Referral", "Purchased List", "Organic Search")
_LEAD_STATUSES = ("Open", "Working", "Nurturing", "Unqualified")
_NAME_GROUPS = tuple(FIRST_NAMES)
# the true employer's names and domains: they shape emails and company strings, then go
_COMPANY_COLUMNS = (
    "name",
    "base",
    "latin",
    "spaced",
    "suffix",
    "parent_name",
    "domain",
    "alias_domain",
)


def make_people(
    rng: np.random.Generator,
    accounts: pl.DataFrame,
    orphans: pl.DataFrame,
    users: pl.DataFrame,
    n_people: int,
    end_s: int,
) -> pl.DataFrame:
    """``n_people`` leads and contacts; columns after ``true_`` and ``duplicate_of`` are hidden."""
    n_dup = int(n_people * DUPLICATE_SHARE)
    n_orphan = int(n_people * ORPHAN_SHARE)
    source = pl.concat(
        [
            _employees_of_accounts(rng, accounts, n_people - n_dup - n_orphan),
            _employees_of_orphans(rng, orphans, n_orphan),
        ]
    )
    people = source.with_row_index("person_id").with_columns(
        kind=pl.when(
            pl.col("true_account_id").is_not_null()
            & pl.Series(rng.random(source.height) < CONTACT_SHARE)
        )
        .then(pl.lit("contact"))
        .otherwise(pl.lit("lead")),
    )
    people = _names(rng, people)
    people = _emails(rng, people)
    people = _company_strings(rng, people)
    people = _details(rng, people, users, end_s)
    people = _links(rng, people)
    people = _duplicates(rng, people, n_dup, end_s)
    return people.drop(
        *_COMPANY_COLUMNS, "country_idx", "region", "first_ascii", "last_ascii", "account_phone"
    )


def _employees_of_accounts(
    rng: np.random.Generator, accounts: pl.DataFrame, n: int
) -> pl.DataFrame:
    """People of real accounts, more of them at larger companies (never on duplicate records)."""
    real = accounts.filter(pl.col("duplicate_of").is_null())
    weight = np.sqrt(real["employees_true"].to_numpy().astype(np.float64)) + 1.0
    rows = rng.choice(real.height, size=n, p=weight / weight.sum())
    parents = accounts.select(
        pl.col("account_id").alias("parent_id"), pl.col("name").alias("parent_name")
    )
    chosen = real[rows].join(parents, on="parent_id", how="left", maintain_order="left")
    return chosen.select(
        pl.col("account_id").alias("true_account_id"),
        pl.lit(None, dtype=pl.String).alias("true_company"),
        *_COMPANY_COLUMNS,
        "country",
        "country_idx",
        "region",
        "city",
        "phone",
        "owner_id",
    )


def _employees_of_orphans(rng: np.random.Generator, orphans: pl.DataFrame, n: int) -> pl.DataFrame:
    """People of companies that are not in the CRM: every one of them is a true orphan."""
    chosen = orphans[rng.integers(0, max(orphans.height, 1), n)] if n else orphans.clear()
    codes = [c.code for c in COUNTRIES]
    regions = [c.region for c in COUNTRIES]
    idx = chosen["country_idx"].to_numpy()
    return chosen.select(
        pl.lit(None, dtype=pl.UInt32).alias("true_account_id"),
        pl.col("name").alias("true_company"),
        "name",
        "base",
        "latin",
        "spaced",
        "suffix",
        pl.lit(None, dtype=pl.String).alias("parent_name"),
        "domain",
        pl.lit(None, dtype=pl.String).alias("alias_domain"),
        gather(codes, idx).alias("country"),
        "country_idx",
        gather(regions, idx).alias("region"),
        pl.lit(None, dtype=pl.String).alias("city"),
        pl.lit(None, dtype=pl.String).alias("phone"),
        pl.lit(MARKETING_QUEUE_ID, dtype=pl.UInt32).alias("owner_id"),
    )


def _names(rng: np.random.Generator, people: pl.DataFrame) -> pl.DataFrame:
    """First and last names from the company country's naming tradition, with ASCII forms."""
    group_of_country = np.array([_NAME_GROUPS.index(c.names) for c in COUNTRIES])
    group = group_of_country[people["country_idx"].to_numpy()]
    first_lists = [FIRST_NAMES[g] for g in _NAME_GROUPS]
    last_lists = [LAST_NAMES[g] for g in _NAME_GROUPS]
    _, fi = pick_within(rng, group, first_lists)
    _, li = pick_within(rng, group, last_lists)
    firsts = [pair for options in first_lists for pair in options]
    lasts = [pair for options in last_lists for pair in options]
    return people.with_columns(
        first_name=gather([f[0] for f in firsts], fi),
        first_ascii=gather([f[1] for f in firsts], fi),
        last_name=gather([x[0] for x in lasts], li),
        last_ascii=gather([x[1] for x in lasts], li),
    )


def _emails(rng: np.random.Generator, people: pl.DataFrame) -> pl.DataFrame:
    """Corporate addresses in five local-part patterns, ~15% personal, a few missing or cased."""
    n = people.height
    first, last = pl.col("first_ascii"), pl.col("last_ascii")
    pattern = pl.Series(pick(rng, 5, n, [50, 20, 15, 10, 5]))
    local = (
        pl.when(pattern == 0)
        .then(pl.concat_str(first, pl.lit("."), last))
        .when(pattern == 1)
        .then(pl.concat_str(first.str.slice(0, 1), last))
        .when(pattern == 2)
        .then(first)
        .when(pattern == 3)
        .then(pl.concat_str(first, pl.lit("_"), last))
        .otherwise(pl.concat_str(first, last.str.slice(0, 1)))
    )
    use_alias = pl.col("alias_domain").is_not_null() & pl.Series(rng.random(n) < 0.25)
    corporate = pl.concat_str(
        local, pl.lit("@"), pl.when(use_alias).then("alias_domain").otherwise("domain")
    )
    digits = pl.Series(rng.integers(1, 99, n)).cast(pl.String)
    with_digits = pl.Series(rng.random(n) < 0.5)
    freemail = gather(FREEMAIL_DOMAINS, pick(rng, len(FREEMAIL_DOMAINS), n, _FREEMAIL_WEIGHTS))
    personal = pl.concat_str(
        first,
        pl.lit("."),
        last,
        pl.when(with_digits).then(digits).otherwise(pl.lit("")),
        pl.lit("@"),
        freemail,
    )
    is_personal = pl.Series(rng.random(n) < PERSONAL_EMAIL_SHARE)
    email = pl.when(is_personal).then(personal).otherwise(corporate)
    draw = rng.random(n)
    return people.with_columns(
        email=pl.when(pl.Series(draw < 0.02))
        .then(None)
        .when(pl.Series(draw > 0.97))
        .then(email.str.to_titlecase())
        .otherwise(email),
    )


def _company_strings(rng: np.random.Generator, people: pl.DataFrame) -> pl.DataFrame:
    """The employer as typed on a form: exact, re-suffixed, cased, misspelt, shortened, empty."""
    n = people.height
    forms = [f[0] for f in _COMPANY_FORMS]
    form = pl.Series(pick(rng, len(forms), n, [f[1] for f in _COMPANY_FORMS]))
    position = pl.Series(rng.random(n))
    generic = gather(_GENERIC_SUFFIXES, rng.integers(0, len(_GENERIC_SUFFIXES), n))
    junk = gather(JUNK_COMPANIES, rng.integers(0, len(JUNK_COMPANIES), n))
    base = pl.col("base")
    k = (1 + position * (base.str.len_chars() - 2).clip(0)).cast(pl.Int64)
    typo = pl.concat_str(
        base.str.slice(0, k), base.str.slice(k + 1, 1), base.str.slice(k, 1), base.str.slice(k + 2)
    )
    acronym = (
        pl.col("latin")
        .str.split(" ")
        .list.eval(pl.element().str.slice(0, 1))
        .list.join("")
        .str.to_uppercase()
    )
    short = pl.col("latin").str.split(" ").list.head(2).list.join(" ")
    written = (
        pl.when(form == forms.index("base"))
        .then(base)
        .when(form == forms.index("other_suffix"))
        .then(pl.concat_str(pl.col("latin"), pl.lit(" "), generic))
        .when(form == forms.index("upper"))
        .then(pl.col("name").str.to_uppercase())
        .when(form == forms.index("lower"))
        .then(pl.col("name").str.to_lowercase())
        .when(form == forms.index("typo"))
        .then(typo)
        .when(form == forms.index("acronym"))
        .then(acronym)
        .when(form == forms.index("spacing"))
        .then(pl.col("spaced"))
        .when(form == forms.index("latin"))
        .then(pl.col("latin"))
        .when((form == forms.index("parent")) & pl.col("parent_name").is_not_null())
        .then("parent_name")
        .when(form == forms.index("short"))
        .then(short)
        .when(form == forms.index("empty"))
        .then(pl.lit(None, dtype=pl.String))
        .when(form == forms.index("junk"))
        .then(junk)
        .otherwise(pl.col("name"))
    )
    contact_keeps = pl.Series(rng.random(n) < 0.7)
    return people.with_columns(
        company=pl.when(pl.col("kind") == "lead")
        .then(written)
        .when(contact_keeps)
        .then(pl.col("name"))
        .otherwise(None)
    )


def _details(
    rng: np.random.Generator, people: pl.DataFrame, users: pl.DataFrame, end_s: int
) -> pl.DataFrame:
    """Title, phone, country and city (sometimes dirty or missing), owner, source, status, dates."""
    n = people.height
    title = gather([t[0] for t in TITLES], pick(rng, len(TITLES), n, [t[1] for t in TITLES]))
    random_phone = pl.Series(rng.integers(100_000_000, 999_999_999, n)).cast(pl.String)
    phone_form = pl.Series(pick(rng, 3, n, [30, 30, 40]))
    names = gather([c.name for c in COUNTRIES], people["country_idx"].to_numpy())
    country_form = pl.Series(pick(rng, 3, n, [88, 4, 8]))
    sdr = owners_in_region(rng, users, "sdr", people["region"])
    lead_owner = np.where(rng.random(n) < 0.6, sdr, MARKETING_QUEUE_ID)
    created = end_s - rng.uniform(1, 700, n) * DAY
    return people.with_columns(
        title=title.replace("", None),
        account_phone=pl.col("phone"),
    ).with_columns(
        phone=pl.when(phone_form == 0)
        .then("account_phone")
        .when(phone_form == 1)
        .then(pl.concat_str(pl.lit("+"), random_phone))
        .otherwise(None),
        country=pl.when(country_form == 0)
        .then("country")
        .when(country_form == 1)
        .then(names)
        .otherwise(None),
        city=pl.when(pl.Series(rng.random(n) < 0.6)).then("city").otherwise(None),
        owner_id=pl.when(pl.col("kind") == "contact")
        .then("owner_id")
        .otherwise(pl.Series(lead_owner)),
        lead_source=gather(_LEAD_SOURCES, rng.integers(0, len(_LEAD_SOURCES), n)),
        status=gather(_LEAD_STATUSES, rng.integers(0, len(_LEAD_STATUSES), n)),
        created_s=pl.Series(created.astype(np.int64)),
        modified_s=pl.Series((created + rng.random(n) * (end_s - created)).astype(np.int64)),
    )


def _links(rng: np.random.Generator, people: pl.DataFrame) -> pl.DataFrame:
    """Existing CRM links: contacts on their account, ~10% of leads converted, ~5% linked."""
    n = people.height
    draw = pl.Series(rng.random(n))
    in_crm = pl.col("true_account_id").is_not_null()
    lead = pl.col("kind") == "lead"
    converted = lead & in_crm & (draw < 0.10)
    linked = lead & in_crm & (draw >= 0.10) & (draw < 0.15)
    return people.with_columns(
        account_id=pl.when((pl.col("kind") == "contact") | linked).then("true_account_id"),
        is_converted=converted,
        converted_account_id=pl.when(converted).then("true_account_id"),
        status=pl.when(converted).then(pl.lit("Converted")).when(lead).then("status"),
    )


def _duplicates(
    rng: np.random.Generator, people: pl.DataFrame, n_dup: int, end_s: int
) -> pl.DataFrame:
    """Append duplicate lead records of existing people (same email, maybe other case)."""
    people = people.with_columns(duplicate_of=pl.lit(None, dtype=pl.UInt32))
    if n_dup == 0:
        return people
    originals = rng.choice(people.height, size=n_dup, replace=False)
    created = end_s - rng.uniform(1, 200, n_dup) * DAY
    shout = pl.Series(rng.random(n_dup) < 0.3)
    dup = people[originals].with_columns(
        duplicate_of=pl.col("person_id"),
        person_id=pl.Series(np.arange(people.height, people.height + n_dup), dtype=pl.UInt32),
        kind=pl.lit("lead"),
        account_id=pl.lit(None, dtype=pl.UInt32),
        is_converted=pl.lit(False),
        converted_account_id=pl.lit(None, dtype=pl.UInt32),
        email=pl.when(shout).then(pl.col("email").str.to_uppercase()).otherwise("email"),
        status=pl.lit("Open"),
        created_s=pl.Series(created.astype(np.int64)),
        modified_s=pl.Series(created.astype(np.int64)),
    )
    return pl.concat([people, dup])
