"""Input frames turned into matching keys: one row per person, per account and per account domain.

Only `person_id` and `account_id` (plus `name` on accounts) are required; a missing optional
column counts as empty. Salesforce accounts have only a Website, HubSpot companies a domain:
either works, both are used when present.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import polars as pl

from sync.matching.normalise import (
    company_table,
    country_key,
    domain_table,
    email_host,
    phone_key,
    usable_company,
    website_host,
)

__all__ = [
    "ACCOUNT_COLUMNS",
    "PEOPLE_COLUMNS",
    "Lookups",
    "account_keys",
    "conformed",
    "domain_index",
    "lookup_tables",
    "own_domains",
    "person_keys",
    "with_hosts",
]

_ACCOUNT_ID = "account id"  # stands for the dtype of the accounts' account_id
# column -> dtype when absent (accounts: alias_domains may also be one string per row)
ACCOUNT_COLUMNS: dict[str, pl.DataType | str] = {
    "name": pl.String(),
    "website": pl.String(),
    "domain": pl.String(),
    "alias_domains": pl.List(pl.String()),
    "country": pl.String(),
    "phone": pl.String(),
    "parent_id": _ACCOUNT_ID,
    "created_at": pl.Int64(),
    "open_opportunities": pl.Int64(),
}
PEOPLE_COLUMNS: dict[str, pl.DataType | str] = {
    "email": pl.String(),
    "company": pl.String(),
    "country": pl.String(),
    "phone": pl.String(),
    "website": pl.String(),
    "account_id": _ACCOUNT_ID,
    "converted_account_id": _ACCOUNT_ID,
}


@dataclass(frozen=True)
class Lookups:
    """Keys of every distinct value: host -> registrable domain, company name -> name key."""

    domains: pl.DataFrame
    names: pl.DataFrame


def conformed(
    frame: pl.DataFrame,
    columns: Mapping[str, pl.DataType | str],
    id_column: str,
    account_id: pl.DataType,
) -> pl.DataFrame:
    """The id and `columns` only, a missing column added as nulls of its dtype."""
    missing = [
        pl.lit(None, dtype=account_id if dtype == _ACCOUNT_ID else dtype).alias(name)
        for name, dtype in columns.items()
        if name not in frame.columns
    ]
    return frame.with_columns(missing).select(id_column, *columns)


def _alias_list(accounts: pl.DataFrame) -> pl.DataFrame:
    """Alias domains as a list, also when the CRM gives them as one string ("a.com; b.com")."""
    if accounts.schema["alias_domains"] == pl.String:
        return accounts.with_columns(pl.col("alias_domains").str.extract_all(r"[^,;\s]+"))
    return accounts


def _account_hosts(accounts: pl.DataFrame) -> pl.DataFrame:
    """(account_id, host) for the website, the domain field and each alias domain."""
    aliases = _alias_list(accounts).select("account_id", host="alias_domains").explode("host")
    return pl.concat(
        [
            accounts.select("account_id", host=website_host(pl.col("website"))),
            accounts.select("account_id", host=website_host(pl.col("domain"))),
            aliases.with_columns(host=website_host(pl.col("host"))),
        ]
    ).drop_nulls("host")


def with_hosts(people: pl.DataFrame) -> pl.DataFrame:
    """People with `host` (of the email address) and `website_host`."""
    return people.with_columns(
        host=email_host(pl.col("email")), website_host=website_host(pl.col("website"))
    )


def lookup_tables(accounts: pl.DataFrame, people: pl.DataFrame) -> Lookups:
    """The keys of every distinct host and company name in both frames (people `with_hosts`).

    Computing each distinct value once keeps tldextract and the name folding cheap on a million
    rows.
    """
    hosts = pl.concat([_account_hosts(accounts)["host"], people["host"], people["website_host"]])
    names = pl.concat([accounts["name"], people["company"]])
    return Lookups(domains=domain_table(hosts), names=company_table(names))


def person_keys(people: pl.DataFrame, tables: Lookups, personal: frozenset[str]) -> pl.DataFrame:
    """One row per person: CRM links, email domain, company key, country and phone keys."""
    domains, names = tables.domains, tables.names
    people = people.join(domains, on="host", how="left", maintain_order="left")
    people = people.join(
        domains.rename({"host": "website_host", "domain": "website_domain"}),
        on="website_host",
        how="left",
        maintain_order="left",
    )
    people = people.join(names, on="company", how="left", maintain_order="left")
    listed = list(personal)
    is_personal = pl.col("host").is_in(listed) | pl.col("domain").is_in(listed)
    return people.select(
        "person_id",
        contact_of="account_id",
        link_id=pl.coalesce("account_id", "converted_account_id"),
        personal=is_personal.fill_null(False),
        corporate_domain=pl.when(~is_personal).then("domain"),
        website_domain="website_domain",
        company_key=pl.when(usable_company(pl.col("key"))).then("key"),
        country=country_key(pl.col("country")),
        phone=phone_key(pl.col("phone")),
    )


def _family_roots(accounts: pl.DataFrame, max_depth: int = 16) -> pl.DataFrame:
    """(account_id, root_id): the top of each account's parent chain (cycles stop at max_depth)."""
    parents = accounts.select("account_id", up="parent_id").filter(pl.col("up").is_not_null())
    walk = accounts.select("account_id", root_id="account_id", up="parent_id")
    for _ in range(max_depth):
        climbing = pl.col("up").is_not_null()
        if not walk.select(climbing.any()).item():
            break
        walk = walk.with_columns(root_id=pl.when(climbing).then("up").otherwise("root_id"))
        walk = walk.join(
            parents.rename({"account_id": "root_id", "up": "next"}),
            on="root_id",
            how="left",
            maintain_order="left",
        ).select("account_id", "root_id", up="next")
    return walk.select("account_id", "root_id")


def account_keys(
    accounts: pl.DataFrame, persons: pl.DataFrame, tables: Lookups, index: pl.DataFrame
) -> pl.DataFrame:
    """One row per account: name key, country, phone, hierarchy root and tie-break figures."""
    contacts = persons.group_by(account_id="contact_of").agg(contacts=pl.len()).drop_nulls()
    domains = index.group_by("account_id").agg(n_domains=pl.len())
    keyed = accounts.join(tables.names, left_on="name", right_on="company", how="left")
    return (
        keyed.select(
            "account_id",
            "created_at",
            "open_opportunities",
            name_key="key",
            country=country_key(pl.col("country")),
            phone=phone_key(pl.col("phone")),
        )
        .join(_family_roots(accounts), on="account_id", how="left")
        .join(contacts, on="account_id", how="left")
        .join(domains, on="account_id", how="left")
        .with_columns(pl.col("contacts", "n_domains").fill_null(0))
    )


def own_domains(accounts: pl.DataFrame, tables: Lookups, personal: frozenset[str]) -> pl.DataFrame:
    """(account_id, domain): each account's own domains (website, domain field, alias domains),
    personal domains left out."""
    own = _account_hosts(accounts).join(tables.domains, on="host").select("account_id", "domain")
    return own.drop_nulls().filter(~pl.col("domain").is_in(list(personal))).unique()


def domain_index(accounts: pl.DataFrame, own: pl.DataFrame, persons: pl.DataFrame) -> pl.DataFrame:
    """(account_id, domain): own domains (`own_domains`) plus the corporate domains of linked
    people (of ``accounts`` only).

    Personal domains are never among them, so no one ever matches an account through gmail.com.
    """
    linked = persons.filter(pl.col("link_id").is_not_null()).select(
        account_id="link_id", domain="corporate_domain"
    )
    learned = linked.join(accounts.select("account_id"), on="account_id", how="semi")
    return pl.concat([own, learned]).drop_nulls().unique()
