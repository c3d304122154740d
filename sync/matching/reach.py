"""Who a change can reach: the people whose outcome may differ once some records changed.

A person's outcome depends on their own fields and on the accounts their keys meet (CRM link,
corporate email domain, exact or similar company name), with those accounts' relatives (a
hierarchy is settled as one) and figures learned from other people (contacts counted, domains
of linked people). So after a change only the people changed themselves, and those whose keys
meet a changed account or one of its relatives, can be linked differently; everyone else's
outcome stays what it was.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

import polars as pl

from sync.matching.similarity import similar_names

__all__ = ["Changes", "reached"]


@dataclass(frozen=True)
class Changes:
    """What changed since the last link.

    ``people``: relinked whatever they match. ``accounts``: every person whose keys meet one of
    them (or a relative) is relinked; name accounts whose fields, contacts, linked people's
    domains or open opportunities changed, and deleted ones.
    """

    people: Collection[Any] = ()
    accounts: Collection[Any] = ()


def _ids(values: Collection[Any], dtype: pl.DataType) -> pl.Series:
    return pl.Series(list(values), dtype=dtype)


def _with_relatives(firms: pl.DataFrame, changed: pl.Series) -> pl.Series:
    """The changed accounts and every account of their hierarchies."""
    roots = firms.filter(pl.col("account_id").is_in(changed.implode()))["root_id"]
    family = firms.filter(pl.col("root_id").is_in(roots.append(changed).implode()))["account_id"]
    return family.append(changed).unique()


def reached(
    persons: pl.DataFrame,
    firms: pl.DataFrame,
    index: pl.DataFrame,
    changes: Changes,
    threshold: int,
) -> pl.DataFrame:
    """The rows of ``persons`` (`keys.person_keys`) a change can reach."""
    accounts = _with_relatives(firms, _ids(changes.accounts, firms.schema["account_id"]))
    domains = index.filter(pl.col("account_id").is_in(accounts.implode()))["domain"]
    names = firms.filter(pl.col("account_id").is_in(accounts.implode()))["name_key"].drop_nulls()
    similar = similar_names(persons["company_key"], names, threshold)["query"]
    hit = (
        pl.col("person_id").is_in(_ids(changes.people, persons.schema["person_id"]).implode())
        | pl.col("link_id").is_in(accounts.implode())
        | pl.col("corporate_domain").is_in(domains.implode())
        | pl.col("company_key").is_in(names.implode())
        | pl.col("company_key").is_in(similar.implode())
    )
    return persons.filter(hit.fill_null(False))
