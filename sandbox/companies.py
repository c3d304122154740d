"""Companies of the synthetic org: CRM accounts and the orphan companies that are not in the CRM.

Names are drawn from unique stem combinations, so every company has its own name and domain;
the mess a real CRM has (legal suffixes, website spellings, alias domains, subsidiaries that share
or vary the parent's domain, duplicate account records, Japanese names) is layered on top.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from sandbox.draw import fold_ascii, gather, nullable, pick, pick_within
from sandbox.vocab import (
    BRAND_STEMS,
    COUNTRIES,
    DESCRIPTORS,
    INDUSTRIES,
    JP_DESCRIPTORS,
    JP_STEMS,
    SECOND_STEMS,
    SUBSIDIARY_WORDS,
    TOPICS,
)
from sandbox.world import WorldParams

__all__ = ["Companies", "make_companies"]

DAY = 86_400
SUBSIDIARY_SHARE = 0.07
DUPLICATE_SHARE = 0.005
ALIAS_SHARE = 0.12
CUSTOMER_SHARE = 0.06
COMPETITOR_SHARE = 0.005
_REGION_FIT = {"NA": 0.2, "EMEA": 0.1, "APAC": 0.0, "LATAM": -0.2}
_WEBSITE_FORMS = (  # (prefix, suffix, weight); None prefix = no website on record
    ("https://www.", "", 30),
    ("www.", "", 15),
    ("http://", "/", 10),
    ("https://", "", 15),
    ("https://www.", "/en/home", 8),
    ("", "", 10),
    ("HTTPS://WWW.", "/", 2),
    (None, None, 4),
    ("https://", "/?utm_source=crm", 3),
    ("https://www.", "/about-us", 3),
)


@dataclass(frozen=True)
class Companies:
    """Generated accounts (CRM records plus hidden columns) and orphan companies."""

    accounts: pl.DataFrame
    orphans: pl.DataFrame


def make_companies(
    rng: np.random.Generator, n_accounts: int, n_orphans: int, end_s: int, world: WorldParams
) -> Companies:
    """Draw ``n_accounts`` CRM accounts and ``n_orphans`` companies that only appear on leads;
    ``world`` says how much of their fit the firmographics reveal."""
    n_dup = int(n_accounts * DUPLICATE_SHARE)
    n_base = n_accounts - n_dup
    capacity = len(BRAND_STEMS) * len(SECOND_STEMS) * len(DESCRIPTORS)
    if n_base + n_orphans > capacity:
        raise ValueError(
            f"at most {capacity} companies can be named, asked for {n_base + n_orphans}"
        )
    combos = rng.choice(capacity, size=n_base + n_orphans, replace=False)
    country = pick(rng, len(COUNTRIES), n_base + n_orphans, [c.weight for c in COUNTRIES])
    named = _with_domains(rng, _named(rng, combos, country))
    accounts = named.slice(0, n_base).with_row_index("account_id")
    accounts = _firmographics(rng, accounts, end_s, world)
    accounts = _subsidiaries(rng, accounts)
    accounts = _alias_domains(rng, accounts)
    accounts = _duplicates(rng, accounts, n_dup, end_s)
    orphans = named.slice(n_base).with_row_index("company_id")
    return Companies(accounts=_websites(rng, accounts), orphans=orphans)


def _named(rng: np.random.Generator, combos: np.ndarray, country: np.ndarray) -> pl.DataFrame:
    """Latin names from stem combinations, then Japanese names for some Japanese companies."""
    n_b, n_c = len(SECOND_STEMS), len(DESCRIPTORS)
    a, b, c = combos // (n_b * n_c), (combos // n_c) % n_b, combos % n_c
    stems_a = gather(BRAND_STEMS, a)
    stems_b = gather(SECOND_STEMS, b)
    stems_c = gather(DESCRIPTORS, c)
    compound = pl.Series(rng.random(len(combos)) < 0.35)
    frame = pl.DataFrame(
        {
            "a": stems_a,
            "b": stems_b,
            "c": stems_c,
            "compound": compound,
            "ascii_a": gather([fold_ascii(s) for s in BRAND_STEMS], a),
            "ascii_b": gather([fold_ascii(s) for s in SECOND_STEMS], b),
            "ascii_c": gather([fold_ascii(s) for s in DESCRIPTORS], c),
            "country_idx": country,
            "suffix": _legal_suffixes(rng, country),
            "has_suffix": rng.random(len(combos)) < 0.55,
        }
    )
    frame = frame.with_columns(
        latin=pl.when("compound")
        .then(pl.concat_str("a", "b", pl.lit(" "), "c"))
        .otherwise(pl.concat_str("a", "b", "c", separator=" ")),
        spaced=pl.concat_str("a", "b", "c", separator=" "),
        root=pl.concat_str("ascii_a", "ascii_b", "ascii_c").str.to_lowercase(),
        short_root=pl.concat_str("ascii_a", "ascii_b").str.to_lowercase(),
    ).with_columns(base=pl.col("latin"))
    frame = _japanese(rng, frame)
    return frame.with_columns(
        name=pl.when(pl.col("jp_name").is_not_null())
        .then("jp_name")
        .when("has_suffix")
        .then(pl.concat_str("base", "suffix", separator=" "))
        .otherwise("base"),
    ).drop("a", "b", "c", "ascii_a", "ascii_b", "ascii_c", "jp_name")


def _legal_suffixes(rng: np.random.Generator, country: np.ndarray) -> pl.Series:
    """A legal suffix of each company's own country ("GmbH", "Ltd", "Inc.")."""
    return gather(*pick_within(rng, country, [c.legal_suffixes for c in COUNTRIES]))


def _japanese(rng: np.random.Generator, frame: pl.DataFrame) -> pl.DataFrame:
    """Give most Japanese companies a katakana name with 株式会社 and a romaji domain root."""
    jp_code = [c.code for c in COUNTRIES].index("JP")
    rows = np.flatnonzero(
        (frame["country_idx"].to_numpy() == jp_code) & (rng.random(frame.height) < 0.6)
    )
    capacity = len(JP_STEMS) ** 2 * len(JP_DESCRIPTORS)
    rows = rows[:capacity]
    combo = rng.choice(capacity, size=len(rows), replace=False)
    n_s, n_d = len(JP_STEMS), len(JP_DESCRIPTORS)
    ja, jb, jc = combo // (n_s * n_d), (combo // n_d) % n_s, combo % n_d
    kana = [s[0] for s in JP_STEMS]
    romaji = [s[1] for s in JP_STEMS]
    jp = pl.DataFrame(
        {
            "row": rows,
            "kana": gather(kana, ja)
            + gather(kana, jb)
            + gather([d[0] for d in JP_DESCRIPTORS], jc),
            "ra": gather(romaji, ja),
            "rb": gather(romaji, jb),
            "rc": gather([d[1] for d in JP_DESCRIPTORS], jc),
            "english": gather([d[2] for d in JP_DESCRIPTORS], jc),
            "prefixed": rng.random(len(rows)) < 0.5,
        }
    ).with_columns(
        jp_name=pl.when("prefixed")
        .then(pl.lit("株式会社") + pl.col("kana"))
        .otherwise(pl.col("kana") + pl.lit("株式会社")),
        jp_latin=pl.concat_str(
            pl.col("ra").str.to_titlecase(),
            pl.col("rb").str.to_titlecase(),
            "english",
            separator=" ",
        ),
        jp_root=pl.concat_str("ra", "rb", "rc"),
        jp_short=pl.concat_str("ra", "rb"),
    )
    frame = frame.with_row_index("row").join(
        jp.select("row", "jp_name", "kana", "jp_latin", "jp_root", "jp_short"), on="row", how="left"
    )
    is_jp = pl.col("jp_name").is_not_null()
    return frame.with_columns(
        base=pl.when(is_jp).then("kana").otherwise("base"),
        latin=pl.when(is_jp).then("jp_latin").otherwise("latin"),
        spaced=pl.when(is_jp).then("jp_latin").otherwise("spaced"),
        root=pl.when(is_jp).then("jp_root").otherwise("root"),
        short_root=pl.when(is_jp).then("jp_short").otherwise("short_root"),
        suffix=pl.when(is_jp).then(pl.lit("株式会社")).otherwise("suffix"),
        has_suffix=is_jp | pl.col("has_suffix"),
    ).drop("row", "kana", "jp_latin", "jp_root", "jp_short")


def _with_domains(rng: np.random.Generator, frame: pl.DataFrame) -> pl.DataFrame:
    """Primary domain: the root on the country's TLD for ~45% of non-US companies, else .com."""
    tlds = [c.tld for c in COUNTRIES]
    own_tld = gather(tlds, frame["country_idx"].to_numpy())
    use_own = pl.Series(rng.random(frame.height) < 0.45)
    frame = frame.with_columns(tld=pl.when(use_own).then(own_tld).otherwise(pl.lit("com")))
    return frame.with_columns(domain=pl.concat_str("root", pl.lit("."), "tld"))


def _firmographics(
    rng: np.random.Generator, accounts: pl.DataFrame, end_s: int, world: WorldParams
) -> pl.DataFrame:
    """Country, region, city, industry, size, revenue, type flags, phone, dates and hidden fit
    (the firmographic effects scaled by the world, plus its hidden noise)."""
    n = accounts.height
    country = accounts["country_idx"].to_numpy()
    industry = pick(rng, len(INDUSTRIES), n, [i.weight for i in INDUSTRIES])
    employees = np.clip(np.rint(rng.lognormal(np.log(150), 1.5, n)), 1, 250_000).astype(np.int64)
    revenue = np.round(employees * rng.lognormal(np.log(180_000), 0.5, n), -3)
    competitor = rng.random(n) < COMPETITOR_SHARE
    industry[competitor] = 0  # competitors sell what we sell
    region = np.array([c.region for c in COUNTRIES])[country]
    visible = (
        np.array([i.fit_effect for i in INDUSTRIES])[industry]
        + np.clip(0.5 - 0.35 * (np.log10(employees) - 2.8) ** 2, -1.0, None)
        + np.vectorize(_REGION_FIT.get)(region)
    )
    fit = world.visible_fit_scale * visible + rng.normal(0, world.hidden_fit_sd, n)
    created = end_s - rng.uniform(30, 1500, n) * DAY
    return accounts.with_columns(
        country=gather([c.code for c in COUNTRIES], country),
        region=pl.Series(region),
        city=_cities(rng, country),
        industry=gather([i.name for i in INDUSTRIES], industry),
        employees_true=pl.Series(employees),
        employees=nullable(np.where(rng.random(n) < 0.04, -1, employees), pl.Int64),
        revenue=pl.Series(np.where(rng.random(n) < 0.10, np.nan, revenue)).fill_nan(None),
        is_customer=pl.Series((rng.random(n) < CUSTOMER_SHARE) & ~competitor),
        is_competitor=pl.Series(competitor),
        phone=_phones(rng, country),
        fit=pl.Series(fit),
        preferred_topic=gather(TOPICS, rng.integers(0, len(TOPICS), n)),
        created_s=pl.Series(created.astype(np.int64)),
        modified_s=pl.Series((created + rng.random(n) * (end_s - created)).astype(np.int64)),
        parent_id=pl.lit(None, dtype=pl.UInt32),
        duplicate_of=pl.lit(None, dtype=pl.UInt32),
        shares_parent_domain=pl.lit(False),
    )


def _cities(rng: np.random.Generator, country: np.ndarray) -> pl.Series:
    """A city of each account's country (unicode kept: Zürich, São Paulo, 東京)."""
    return gather(*pick_within(rng, country, [c.cities for c in COUNTRIES]))


def _phones(rng: np.random.Generator, country: np.ndarray) -> pl.Series:
    """Switchboard numbers in international format."""
    codes = gather([c.phone_code for c in COUNTRIES], country)
    area = pl.Series(rng.integers(10, 999, len(country))).cast(pl.String)
    line = pl.Series(rng.integers(1_000_000, 9_999_999, len(country))).cast(pl.String)
    return "+" + codes + " " + area + " " + line


def _subsidiaries(rng: np.random.Generator, accounts: pl.DataFrame) -> pl.DataFrame:
    """Turn ~7% of accounts into children of larger ones, named and domained after the parent."""
    n = accounts.height
    n_children = int(n * SUBSIDIARY_SHARE)
    if n_children == 0:
        return accounts
    order = rng.permutation(n)
    children, pool = order[:n_children], order[n_children:]
    size = accounts["employees_true"].to_numpy()[pool].astype(np.float64)
    parents = rng.choice(pool, size=n_children, p=size / size.sum())
    parent = accounts[parents]
    child = accounts[children]
    words, word_roots = _subsidiary_words(rng, child["country_idx"].to_numpy())
    mode = pick(rng, 3, n_children, [50, 30, 20])  # own-country TLD, own root, parent's domain
    same_tld = child["tld"] == parent["tld"]
    word_root = parent["root"] + word_roots
    domain = (
        pl.DataFrame(
            {
                "m": mode,
                "same": same_tld,
                "pr": parent["root"],
                "wr": word_root,
                "ct": child["tld"],
                "pd": parent["domain"],
            }
        )
        .select(
            pl.when(pl.col("m") == 2)
            .then("pd")
            .when((pl.col("m") == 0) & ~pl.col("same"))
            .then(pl.concat_str("pr", pl.lit("."), "ct"))
            .otherwise(pl.concat_str("wr", pl.lit("."), "ct"))
        )
        .to_series()
    )
    base = parent["latin"] + " " + words
    updates = pl.DataFrame(
        {
            "account_id": child["account_id"],
            "parent_id": parent["account_id"],
            "base": base,
            "latin": base,
            "spaced": base,
            "name": base + " " + child["suffix"],
            "root": word_root,
            "short_root": word_root,
            "domain": domain,
            "shares_parent_domain": pl.Series(mode == 2),
            "industry": parent["industry"],
            "employees_true": (parent["employees_true"] * rng.uniform(0.02, 0.3, n_children))
            .cast(pl.Int64)
            .clip(1),
            "has_suffix": pl.Series(np.ones(n_children, dtype=bool)),
        }
    )
    merged = accounts.update(updates, on="account_id")
    return _unique_domains(merged)


def _subsidiary_words(rng: np.random.Generator, country: np.ndarray) -> tuple[pl.Series, pl.Series]:
    """A subsidiary qualifier in the child's language ("Deutschland", "UK") and its ASCII root."""
    lists = [SUBSIDIARY_WORDS.get(c.names, SUBSIDIARY_WORDS["en"]) for c in COUNTRIES]
    flat, idx = pick_within(rng, country, lists)
    roots = [fold_ascii(w).lower().replace(" ", "") for w in flat]
    return gather(flat, idx), gather(roots, idx)


def _unique_domains(accounts: pl.DataFrame) -> pl.DataFrame:
    """Make every domain unique except where a subsidiary deliberately shares its parent's."""
    own = ~pl.col("shares_parent_domain")
    clash = own & (pl.col("domain").cum_count().over("domain", "shares_parent_domain") > 1)
    return accounts.with_columns(
        domain=pl.when(clash)
        .then(
            pl.concat_str(
                pl.col("root"), pl.col("account_id").cast(pl.String), pl.lit("."), pl.col("tld")
            )
        )
        .otherwise("domain")
    )


def _alias_domains(rng: np.random.Generator, accounts: pl.DataFrame) -> pl.DataFrame:
    """Give ~12% of accounts a second domain: another TLD, or the short brand on .com."""
    n = accounts.height
    chosen = pl.Series(rng.random(n) < ALIAS_SHARE) & accounts["parent_id"].is_null()
    short = pl.Series(rng.random(n) < 0.5)
    other_tld = pl.when(pl.col("tld") == "com").then(pl.lit("io")).otherwise(pl.lit("com"))
    candidate = accounts.select(
        pl.when(short)
        .then(pl.concat_str("short_root", pl.lit(".com")))
        .otherwise(pl.concat_str("root", pl.lit("."), other_tld))
    ).to_series()
    taken = set(accounts["domain"].to_list())
    unique = candidate.is_unique() & ~candidate.is_in(list(taken))
    alias = pl.when(chosen & unique).then(candidate).otherwise(None)
    return accounts.with_columns(alias_domain=alias)


def _duplicates(
    rng: np.random.Generator, accounts: pl.DataFrame, n_dup: int, end_s: int
) -> pl.DataFrame:
    """Append duplicate account records of real companies (same domain, name spelt otherwise)."""
    if n_dup == 0:
        return accounts
    candidates = accounts.filter(pl.col("parent_id").is_null())["account_id"].to_numpy()
    originals = rng.choice(candidates, size=n_dup, replace=False)
    dup = accounts[originals]
    form = pick(rng, 3, n_dup)
    name = pl.select(
        pl.when(pl.Series(form == 0))
        .then(dup["name"].str.to_uppercase())
        .when(pl.Series(form == 1))
        .then(dup["base"])
        .otherwise(dup["base"] + " " + dup["suffix"])
    ).to_series()
    created = end_s - rng.uniform(5, 400, n_dup) * DAY
    dup = dup.with_columns(
        account_id=pl.Series(np.arange(accounts.height, accounts.height + n_dup), dtype=pl.UInt32),
        name=name,
        duplicate_of=pl.Series(originals, dtype=pl.UInt32),
        is_customer=pl.lit(False),
        created_s=pl.Series(created.astype(np.int64)),
        modified_s=pl.Series(created.astype(np.int64)),
        alias_domain=pl.lit(None, dtype=pl.String),
        shares_parent_domain=pl.lit(True),
    )
    return pl.concat([accounts, dup])


def _websites(rng: np.random.Generator, accounts: pl.DataFrame) -> pl.DataFrame:
    """The Website field as people type it: schemes, www, paths, capitals, or nothing."""
    form = pick(rng, len(_WEBSITE_FORMS), accounts.height, [f[2] for f in _WEBSITE_FORMS])
    prefix = pl.Series([f[0] for f in _WEBSITE_FORMS], dtype=pl.String).gather(form)
    suffix = pl.Series([f[1] for f in _WEBSITE_FORMS], dtype=pl.String).gather(form)
    shouting = pl.Series(form == 6)
    cc_path = pl.concat_str(pl.lit("/"), pl.col("country").str.to_lowercase())
    website = pl.concat_str(
        prefix,
        "domain",
        pl.when(pl.col("shares_parent_domain") & pl.col("parent_id").is_not_null())
        .then(cc_path)
        .otherwise(suffix),
    )
    return accounts.with_columns(
        website=pl.when(shouting).then(website.str.to_uppercase()).otherwise(website)
    )
