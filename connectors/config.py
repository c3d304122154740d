"""Connection settings for the CRM connectors: [salesforce] and [hubspot].

Ordinary values come from the settings file; secrets only from the environment variables named
in each model's `SECRET_ENV`, and they are held as `SecretStr` so they never print.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from datetime import timedelta
from types import MappingProxyType
from typing import Annotated, ClassVar, Literal

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, FilePath, SecretStr
from pydantic_core import PydanticCustomError

__all__ = ["HttpsUrl", "HubSpotSettings", "SalesforceAuth", "SalesforceSettings"]

_CONFIG = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False, hide_input_in_errors=True)
# The loader in handoff.settings reads this error type as "the message is already complete".
_SETTING_ERROR = "setting"
_API_VERSION = re.compile(r"\d+\.0")

SalesforceAuth = Literal["session", "password", "client_credentials", "jwt"]


def _https(url: str) -> str:
    """Accept only an absolute https URL, without a trailing slash."""
    if not url.startswith("https://") or len(url) <= len("https://"):
        raise PydanticCustomError(
            _SETTING_ERROR, "must be an https:// URL, got {got}", {"got": json.dumps(url)}
        )
    return url.rstrip("/")


def _api_version(version: str) -> str:
    """Accept a Salesforce REST API version such as "59.0"."""
    if not _API_VERSION.fullmatch(version):
        raise PydanticCustomError(
            _SETTING_ERROR,
            'must be an API version such as "59.0", got {got}',
            {"got": json.dumps(version)},
        )
    return version


_PRIVATE_KEY_ENV = "HANDOFF_SALESFORCE_PRIVATE_KEY"


def _pem_problem(key: SecretStr) -> str | None:
    """Why a JWT login could not sign with ``key``, or None; never shows the key."""
    try:
        load_pem_private_key(key.get_secret_value().encode(), password=None)
    except TypeError:  # it opens only with a passphrase
        return f'auth "jwt" needs the key in {_PRIVATE_KEY_ENV} without a passphrase'
    except (ValueError, UnsupportedAlgorithm):
        return (
            f'auth "jwt" needs a PEM private key in {_PRIVATE_KEY_ENV}: the key file\'s text '
            'from "-----BEGIN PRIVATE KEY-----" to "-----END PRIVATE KEY-----" with its line '
            "breaks, not its path"
        )
    return None


HttpsUrl = Annotated[str, AfterValidator(_https)]
# Minutes an incremental pull reads again behind its cursor: commits land after their stamp
# (Salesforce) and search indexes lag their writes (HubSpot). A day at most: a longer window
# re-reads a day of changes on every cycle, which is a full re-sync's job.
_OverlapMinutes = Annotated[float, Field(ge=0, le=1440)]
_OVERLAP_MINUTES = 5.0

_NEEDS: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {
        "session": ("instance_url", "session_id"),
        "password": ("username", "password"),
        "client_credentials": ("instance_url", "client_id", "client_secret"),
        "jwt": ("username", "client_id", "private_key"),
    }
)


class SalesforceSettings(BaseModel):
    """[salesforce]: how to log in to the org and how hard to use its API."""

    model_config = _CONFIG
    SECRET_ENV: ClassVar[Mapping[str, str]] = MappingProxyType(
        {
            "session_id": "HANDOFF_SALESFORCE_SESSION_ID",
            "password": "HANDOFF_SALESFORCE_PASSWORD",
            "security_token": "HANDOFF_SALESFORCE_SECURITY_TOKEN",
            "client_secret": "HANDOFF_SALESFORCE_CLIENT_SECRET",
            "private_key": _PRIVATE_KEY_ENV,
        }
    )

    auth: SalesforceAuth = "jwt"
    instance_url: HttpsUrl | None = None
    login_domain: str = Field("login", min_length=1)
    username: str | None = Field(None, min_length=1)
    client_id: str | None = Field(None, min_length=1)
    api_version: Annotated[str, AfterValidator(_api_version)] = "59.0"
    ca_bundle: FilePath | None = None
    bulk_threshold: int = Field(10_000, gt=0)
    bulk_write_threshold: int = Field(2_000, gt=0)
    overlap_minutes: _OverlapMinutes = _OVERLAP_MINUTES
    session_id: SecretStr | None = None
    password: SecretStr | None = None
    security_token: SecretStr | None = None
    client_secret: SecretStr | None = None
    private_key: SecretStr | None = None

    @property
    def overlap(self) -> timedelta:
        """The window an incremental pull reads again behind its cursor."""
        return timedelta(minutes=self.overlap_minutes)

    def problems(self) -> tuple[str, ...]:
        """What the chosen `auth` still needs, as phrases that follow "[salesforce] "."""
        missing = [self._missing(key) for key in _NEEDS[self.auth] if getattr(self, key) is None]
        unusable = (
            _pem_problem(self.private_key) if self.auth == "jwt" and self.private_key else None
        )
        return (*missing, *([unusable] if unusable else []))

    def _missing(self, key: str) -> str:
        if key in self.SECRET_ENV:
            return (
                f'auth "{self.auth}" needs the environment variable {self.SECRET_ENV[key]}, '
                "which is not set"
            )
        return f'{key} is required when auth = "{self.auth}"'


class HubSpotSettings(BaseModel):
    """[hubspot]: the API host, the portal's subscription tier (it sets rate limits), TLS, and
    how incremental pulls overlap their cursor and how often they list the recycle bin."""

    model_config = _CONFIG
    SECRET_ENV: ClassVar[Mapping[str, str]] = MappingProxyType({"token": "HANDOFF_HUBSPOT_TOKEN"})

    host: HttpsUrl = "https://api.hubapi.com"
    tier: Literal["starter", "professional", "enterprise"] = "professional"
    ca_bundle: FilePath | None = None
    overlap_minutes: _OverlapMinutes = _OVERLAP_MINUTES
    archive_every_minutes: float = Field(60.0, gt=0, le=1440)
    token: SecretStr | None = None

    @property
    def overlap(self) -> timedelta:
        """The window an incremental pull reads again behind its cursor."""
        return timedelta(minutes=self.overlap_minutes)

    @property
    def archive_every(self) -> timedelta:
        """How long an incremental pull goes without listing the recycle bin again."""
        return timedelta(minutes=self.archive_every_minutes)

    def problems(self) -> tuple[str, ...]:
        """What the connection still needs, as phrases that follow "[hubspot] "."""
        if self.token is None:
            return (f"needs the environment variable {self.SECRET_ENV['token']}, which is not set",)
        return ()
