"""Free-text country names as ISO 3166-1 alpha-2 codes, the form disqualifiers and territories use.

A real ``BillingCountry`` holds whatever was typed: "Germany", "DE", "DEU", "Deutschland",
"U.S.A.", "Korea, Republic of". The names come from two maintained lists: pycountry (ISO 3166
itself: alpha-2 and alpha-3 codes, the ISO short and official names that Salesforce's country
picklist labels use) and Babel's CLDR territory names in every language it ships (what people
type: "Deutschland", "Allemagne", "ドイツ", "Россия"). Case, accents in composed or decomposed
form, dots and a leading "the" do not matter. A value found in neither raises ValueError, which a
stream's converter turns into a warning on the record.

    country_code("Deutschland")  # "DE"
"""

from __future__ import annotations

import re
import unicodedata
from functools import cache
from typing import Any

import pycountry
from babel import Locale, localedata

__all__ = ["COMMON_ALIASES", "country", "country_code"]

# what people write that neither list holds (ISO keeps "GB"; CLDR knows "UK" but not these)
COMMON_ALIASES: dict[str, str] = {
    "great britain": "GB",
    "england": "GB",
    "scotland": "GB",
    "wales": "GB",
    "northern ireland": "GB",
    "uae": "AE",
    "holland": "NL",
}
_FIRST_LANGUAGE = "en"  # where names collide across languages, English wins


def country_code(value: str) -> str:
    """The ISO alpha-2 code a country name or code names (ValueError when none does)."""
    key = _key(value)
    found = _index().get(key) if key else None
    if found is None:
        raise ValueError(f"{value!r} is not a country name or ISO code")
    return found


def country(code: Any, name: Any = None) -> str | None:
    """A stream converter: the picklist code when the org has one, else the name mapped."""
    for value in (code, name):
        if value is not None and str(value).strip():
            return country_code(str(value))
    return None


def _key(value: str) -> str:
    folded = (
        unicodedata.normalize("NFKC", value).casefold().replace("\u2019", "'")
    )  # a typographic apostrophe
    return re.sub(r"^the\s+", "", folded.replace(".", "").strip())


@cache
def _index() -> dict[str, str]:
    """Every known spelling -> alpha-2 code (built once, about a second)."""
    index: dict[str, str] = {}
    iso = {entry.alpha_2 for entry in pycountry.countries}
    for entry in pycountry.countries:
        for attribute in ("alpha_2", "alpha_3", "name", "official_name", "common_name"):
            spelling = getattr(entry, attribute, None)
            if spelling:
                index.setdefault(_key(spelling), entry.alpha_2)
    for language in _languages():
        for code, name in Locale.parse(language).territories.items():
            if code in iso:  # "DE", not the region "150" or the union "EU"
                index.setdefault(_key(name), code)
    return index | {key: code for key, code in COMMON_ALIASES.items() if key not in index}


def _languages() -> list[str]:
    """CLDR's language locales (no regional variants), English first."""
    languages = [name for name in localedata.locale_identifiers() if "_" not in name]
    return sorted(languages, key=lambda name: name != _FIRST_LANGUAGE)
