"""Free-text country names as ISO 3166-1 alpha-2 codes, the form disqualifiers and territories use.

A real ``BillingCountry`` holds whatever was typed: "Germany", "DE", "DEU", "Deutschland",
"U.S.A.", "Korea, Republic of". The names come from two maintained lists: pycountry (ISO 3166
itself: alpha-2 and alpha-3 codes, the ISO short and official names that Salesforce's country
picklist labels use) and Babel's CLDR territory names in every language it ships (what people
type: "Deutschland", "Allemagne", "ドイツ", "Россия"). Case, accents in composed or decomposed
form, dots and a leading "the" do not matter. A value found in neither raises ValueError, which a
stream's converter turns into a warning on the record.

    country_code("Deutschland")  # "DE"

The spellings ship with Handoff as ``country_names.json``, built from those two lists: reading it
takes milliseconds, where building the index from Babel's 300-odd locales took about a second of
every process that met a country (each `handoff sync` from cron), and every install maps the
same text to the same code whatever Babel it has. Rebuild it after upgrading either list::

    python -m connectors.countries  # rewrites connectors/country_names.json

(pycountry and Babel are development dependencies; a test fails when the file and the installed
lists disagree.)
"""

from __future__ import annotations

import json
import re
import unicodedata
from functools import cache, lru_cache
from importlib.metadata import version
from pathlib import Path
from typing import Any

__all__ = ["COMMON_ALIASES", "NAMES_FILE", "built_names", "country", "country_code", "write_names"]

NAMES_FILE = Path(__file__).with_name("country_names.json")

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


@lru_cache(maxsize=4096)  # an org types a few hundred spellings, over and over
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
    """Every known spelling -> alpha-2 code: the shipped names and the common aliases."""
    shipped = json.loads(NAMES_FILE.read_text(encoding="utf-8"))["codes"]
    index = {spelling: code for code, spellings in shipped.items() for spelling in spellings}
    return index | {key: code for key, code in COMMON_ALIASES.items() if key not in index}


def built_names() -> dict[str, list[str]]:
    """Each alpha-2 code's spellings (`_key`-folded, sorted) as pycountry and Babel give them;
    where two codes claim one spelling, ISO's names, then English, then the first language in
    CLDR's order win."""
    import pycountry  # development dependencies: only a rebuild reads them
    from babel import Locale

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
    names: dict[str, list[str]] = {}
    for spelling, code in index.items():
        names.setdefault(code, []).append(spelling)
    return {code: sorted(names[code]) for code in sorted(names)}


def write_names(path: Path = NAMES_FILE) -> int:
    """Rebuild the shipped names from the installed pycountry and Babel; how many spellings."""
    names = built_names()
    document = {
        "about": "ISO 3166-1 alpha-2 code -> its spellings, folded; python -m connectors.countries",
        "babel": version("babel"),
        "pycountry": version("pycountry"),
        "codes": names,
    }
    text = json.dumps(document, ensure_ascii=False, indent=0, separators=(",", ":"))
    path.write_text(text + "\n", encoding="utf-8")
    return sum(len(spellings) for spellings in names.values())


def _languages() -> list[str]:
    """CLDR's language locales (no regional variants), English first."""
    from babel import localedata

    languages = [name for name in localedata.locale_identifiers() if "_" not in name]
    return sorted(languages, key=lambda name: name != _FIRST_LANGUAGE)


if __name__ == "__main__":
    print(f"{write_names():,} spellings written to {NAMES_FILE}")
