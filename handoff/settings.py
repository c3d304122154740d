"""The one frozen settings object: defaults, then the TOML file, then the environment.

Secrets come only from environment variables. Every problem names where it came from, the table
and the key: `settings.toml: [sla] ae_minutes must be a positive integer, got "fast"`.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tomllib
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import MappingProxyType
from typing import Any, ClassVar, Literal

from pydantic import (
    BaseModel,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from connectors.config import HubSpotSettings, SalesforceSettings
from connectors.rules import DEFAULT_ACTIVITY_RULES, ActivitySettings, UserSettings
from handoff.settings_problems import describe_error, table_model, toml_value
from sandbox.world import DEFAULT_PRESET, PRESETS, WorldError, WorldParams, world_from
from scoring.config import (
    DEFAULT_DISQUALIFIERS,
    DEFAULT_FIT,
    DEFAULT_SIGNALS,
    REP_ACTIVITIES,
    SETTINGS_CONFIG,
    Disqualifiers,
    FitRules,
    ModelSettings,
    Signals,
    SignalSpec,
    TierSettings,
    setting_error,
)
from sync.config import (
    FeedbackSettings,
    MatchingSettings,
    RoutingSettings,
    SlaSettings,
    StateSettings,
    SyncSettings,
    url_has_password,
)

__all__ = [
    "DEFAULT_PATH",
    "SANDBOX_TOKEN_VARIABLE",
    "SECRET_VARIABLES",
    "SETTINGS_VARIABLE",
    "CrmSettings",
    "LoggingSettings",
    "SandboxSettings",
    "Settings",
    "SettingsError",
    "check_settings",
    "load_settings",
    "render_settings",
    "settings_source",
]

SETTINGS_VARIABLE = "HANDOFF_SETTINGS"
SANDBOX_TOKEN_VARIABLE = "HANDOFF_SANDBOX_TOKEN"
DEFAULT_PATH = Path("settings.toml")
_PREFIX = "HANDOFF_"
_NO_FILE = "settings"


class CrmSettings(BaseModel):
    """[crm]: which CRM this install talks to; "sandbox" is the embedded synthetic org."""

    model_config = SETTINGS_CONFIG

    kind: Literal["sandbox", "salesforce", "hubspot"] = "sandbox"


class SandboxSettings(BaseModel):
    """[sandbox]: the synthetic org used when [crm] kind = "sandbox", the API it imitates, and
    where a running one is (`url`, token from the environment) when not found or started here."""

    model_config = SETTINGS_CONFIG
    SECRET_ENV: ClassVar[Mapping[str, str]] = MappingProxyType({"token": SANDBOX_TOKEN_VARIABLE})

    crm: Literal["salesforce", "hubspot"] = "salesforce"
    accounts: int = Field(2000, gt=0)
    seed: int = 7
    preset: str = DEFAULT_PRESET
    world: dict[str, float] = Field(default_factory=dict)
    org: str | None = Field(None, min_length=1)
    url: str | None = None
    token: SecretStr | None = None

    @field_validator("url")
    @classmethod
    def _loopback_url(cls, url: str | None) -> str | None:
        if url is not None and not re.fullmatch(r"https?://[^/\s]+/?", url):
            got = json.dumps(url)
            raise setting_error("must be a URL like http://127.0.0.1:8765, got {got}", got=got)
        return url.rstrip("/") if url else url

    @property
    def org_dir(self) -> Path:
        """The org's directory: `org`, else orgs/sandbox-<preset>-<accounts>-<seed>, with a
        digest of the `world` overrides after the preset when there are any (two worlds never
        share an org, nor the CRM state kept with it)."""
        if self.org:
            return Path(self.org)
        world = f"{self.preset}-{_digest(self.world)}" if self.world else self.preset
        return Path(f"orgs/sandbox-{world}-{self.accounts}-{self.seed}")

    def problems(self) -> tuple[str, ...]:
        """What a configured `url` still needs, as phrases that follow "[sandbox] "."""
        if self.url and self.token is None:
            return (
                f"url needs the environment variable {SANDBOX_TOKEN_VARIABLE}, which is not set",
            )
        return ()

    @field_validator("preset")
    @classmethod
    def _known_preset(cls, preset: str) -> str:
        if preset not in PRESETS:
            known = ", ".join(json.dumps(name) for name in PRESETS)
            got = json.dumps(preset)
            raise setting_error("must be one of {known}, got {got}", known=known, got=got)
        return preset

    @field_validator("world")
    @classmethod
    def _known_parameters(cls, world: dict[str, float]) -> dict[str, float]:
        try:
            PRESETS[DEFAULT_PRESET].overridden(world)
        except WorldError as error:
            raise setting_error("is invalid: {reason}", reason=str(error)) from None
        return world

    @property
    def world_params(self) -> WorldParams:
        """The synthetic org's world: the preset with the `world` overrides."""
        return world_from(self.preset, self.world)


def _digest(overrides: Mapping[str, float]) -> str:
    """Eight hex digits naming a set of world overrides, whatever their order."""
    text = json.dumps(dict(sorted(overrides.items())))
    return hashlib.sha256(text.encode()).hexdigest()[:8]


class LoggingSettings(BaseModel):
    """[logging]: what Handoff's modules log on stderr beside a command's report (`log_at`)."""

    model_config = SETTINGS_CONFIG

    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"


class Settings(BaseModel):
    """Every setting of one install, validated and frozen; build it with `load_settings`."""

    model_config = SETTINGS_CONFIG

    crm: CrmSettings = Field(default_factory=CrmSettings)
    sandbox: SandboxSettings = Field(default_factory=SandboxSettings)
    salesforce: SalesforceSettings = Field(default_factory=SalesforceSettings)
    hubspot: HubSpotSettings = Field(default_factory=HubSpotSettings)
    state: StateSettings = Field(default_factory=StateSettings)
    sync: SyncSettings = Field(default_factory=SyncSettings)
    tiers: TierSettings = Field(default_factory=TierSettings)
    sla: SlaSettings = Field(default_factory=SlaSettings)
    routing: RoutingSettings = Field(default_factory=RoutingSettings)
    feedback: FeedbackSettings = Field(default_factory=FeedbackSettings)
    matching: MatchingSettings = Field(default_factory=MatchingSettings)
    users: UserSettings = Field(default_factory=UserSettings)
    activity: ActivitySettings = Field(default_factory=ActivitySettings)
    scoring: ModelSettings = Field(default_factory=ModelSettings)
    logging: LoggingSettings = Field(default_factory=LoggingSettings)
    disqualifiers: Disqualifiers = DEFAULT_DISQUALIFIERS
    signals: Signals = Field(DEFAULT_SIGNALS, validate_default=True)
    fit: FitRules = DEFAULT_FIT

    @field_validator("signals")
    @classmethod
    def _default_half_lives(
        cls, signals: tuple[SignalSpec, ...], info: ValidationInfo
    ) -> tuple[SignalSpec, ...]:
        scoring = info.data.get("scoring")
        if scoring is None:
            return signals
        days = scoring.default_half_life_days
        return tuple(
            s if s.half_life_days is not None else s.model_copy(update={"half_life_days": days})
            for s in signals
        )

    @model_validator(mode="after")
    def _rules_name_signals(self) -> Settings:
        """Every activity rule written in settings types activity as a signal the catalog lists,
        or as rep activity (typed, never scored: `REP_ACTIVITIES`), so a typo never silently
        stops an activity from scoring; a default rule whose signal a shorter catalog leaves out
        just types activity that does not score."""
        if self.activity.rules == DEFAULT_ACTIVITY_RULES:
            return self
        known = {signal.activity for signal in self.signals} | REP_ACTIVITIES
        for index, rule in enumerate(self.activity.rules):
            if rule.signal not in known:
                raise setting_error(
                    "must be an activity of [[signals]] or rep activity ({rep}), got {got}",
                    "activity",
                    "rules",
                    index,
                    "signal",
                    rep=", ".join(json.dumps(a) for a in sorted(REP_ACTIVITIES)),
                    got=json.dumps(rule.signal),
                )
        return self


class SettingsError(ValueError):
    """Settings could not be loaded; `problems` holds each one and `str()` prints one a line."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = tuple(problems)
        super().__init__("\n".join(self.problems))


def _secrets() -> dict[tuple[str, str], str]:
    """(table, key) -> the only environment variable that may set that secret."""
    secrets: dict[tuple[str, str], str] = {}
    for section, field in Settings.model_fields.items():
        model = table_model(field.annotation)
        for key, variable in getattr(model, "SECRET_ENV", {}).items():
            secrets[section, key] = variable
    return secrets


_SECRETS = _secrets()
SECRET_VARIABLES: tuple[str, ...] = tuple(_SECRETS.values())
# the variables of this prefix that are no settings override
_OWN_VARIABLES = frozenset((SETTINGS_VARIABLE, SANDBOX_TOKEN_VARIABLE, *SECRET_VARIABLES))


def load_settings(
    path: Path | None = None, env: Mapping[str, str] | None = None, *, connecting: bool = True
) -> Settings:
    """Defaults, overridden by the file, overridden by `env`; raise `SettingsError` on problems.

    The file is `path`, else $HANDOFF_SETTINGS, else ./settings.toml, which may be absent.
    Without ``connecting`` (a command that never calls the CRM), what the connection still
    needs (a secret not set) is no problem.
    """
    env = os.environ if env is None else env
    source, required = _source(path, env)
    data, problems = _read(source, required)
    label = _NO_FILE if data is None else str(source)
    data = data or {}
    problems += _file_secrets(data, label)
    origins, env_problems = _apply_overrides(data, env)
    problems += env_problems
    _apply_secrets(data, env)
    settings, invalid = _validate(data, origins, label)
    problems += invalid
    if settings is not None and connecting:
        problems += _connection_problems(settings, label)
    if settings is None or problems:
        raise SettingsError(problems)
    return settings


def check_settings(path: Path | None = None, env: Mapping[str, str] | None = None) -> list[str]:
    """Every problem `load_settings` would raise for these arguments; empty when all is well."""
    try:
        load_settings(path, env)
    except SettingsError as error:
        return list(error.problems)
    return []


def settings_source(path: Path | None = None, env: Mapping[str, str] | None = None) -> Path | None:
    """The settings file a command reads, or None when none was named and none is here."""
    found, required = _source(path, os.environ if env is None else env)
    return found if required or found.is_file() else None


def _source(path: Path | None, env: Mapping[str, str]) -> tuple[Path, bool]:
    """The file to read and whether it must exist (it must when someone named it)."""
    if path is not None:
        return path, True
    if env.get(SETTINGS_VARIABLE):
        return Path(env[SETTINGS_VARIABLE]), True
    return DEFAULT_PATH, False


def _read(path: Path, required: bool) -> tuple[dict[str, Any] | None, list[str]]:
    """The parsed file ({} when unreadable), or None when it is optional and absent."""
    try:
        with path.open("rb") as file:
            return tomllib.load(file), []
    except FileNotFoundError:
        return None, [f"{path}: file not found"] if required else []
    except tomllib.TOMLDecodeError as error:
        return {}, [f"{path}: invalid TOML: {error}"]
    except UnicodeDecodeError:
        return {}, [f"{path}: invalid TOML: the file is not UTF-8 text"]
    except OSError as error:
        return {}, [f"{path}: cannot be read: {error.strerror}"]


def _file_secrets(data: dict[str, Any], label: str) -> list[str]:
    """Remove secrets written in the file, unseen, and say where they belong instead."""
    problems = []
    for (section, key), variable in _SECRETS.items():
        table = data.get(section)
        if isinstance(table, dict) and key in table:
            del table[key]
            problems.append(
                f"{label}: [{section}] {key} is a secret: "
                f"set it in the environment variable {variable}, not in the file"
            )
    state = data.get("state")
    url = state.get("database_url") if isinstance(state, dict) else None
    if isinstance(url, str) and url_has_password(url):
        del state["database_url"]
        problems.append(
            f"{label}: [state] database_url contains a password: set the whole URL in the "
            f"environment variable {_override_variable('state', 'database_url')}, not in the file"
        )
    return problems


def _override_variable(section: str, key: str) -> str:
    """The environment variable that overrides a key: HANDOFF_<SECTION>__<KEY>."""
    return f"{_PREFIX}{section.upper()}__{key.upper()}"


def _apply_overrides(
    data: dict[str, Any], env: Mapping[str, str]
) -> tuple[dict[tuple[str, ...], str], list[str]]:
    """Write HANDOFF_<SECTION>__<KEY> variables into `data`; return who set what, and problems."""
    origins: dict[tuple[str, ...], str] = {}
    problems = []
    for name in sorted(env):
        if not name.startswith(_PREFIX) or name in _OWN_VARIABLES:
            continue
        origin = f"environment {name}"
        if "__" not in name:  # not an override; refused when it is one short of one
            meant = _meant_override(name)
            if meant is not None:
                problems.append(
                    f"{origin}: not a variable Handoff reads (two underscores between the "
                    f"section and the key: did you mean {meant}?)"
                )
            continue
        section, _, key = name.removeprefix(_PREFIX).lower().partition("__")
        problem = _override_problem(section, key)
        if problem:
            problems.append(f"{origin}: {problem}")
            continue
        if section not in data:
            origins[section,] = origin
        table = data.setdefault(section, {})
        if isinstance(table, dict):
            table[key] = _parse_value(env[name])
            origins[section, key] = origin
    return origins, problems


def _meant_override(name: str) -> str | None:
    """The override a HANDOFF_* variable with one underscore where two belong means
    (HANDOFF_SANDBOX_CRM: HANDOFF_SANDBOX__CRM), or None: other such names are left alone, as
    a platform may set them (a Kubernetes service named handoff gives every pod
    HANDOFF_SERVICE_HOST and HANDOFF_PORT)."""
    words = name.removeprefix(_PREFIX).lower()
    for at in range(len(words)):
        section, key = words[:at], words[at + 1 :]
        if words[at : at + 1] != "_" or section not in Settings.model_fields:
            continue
        model = table_model(Settings.model_fields[section].annotation)
        if model is not None and key in model.model_fields:
            return _override_variable(section, key)
    return None


def _override_problem(section: str, key: str) -> str | None:
    """Why a HANDOFF_*__* variable cannot override a setting, or None when it can."""
    if not section or not key or "__" in key:
        return f"not a settings override; expected {_PREFIX}<SECTION>__<KEY>"
    if (section, key) in _SECRETS:
        variable = _SECRETS[section, key]
        return f"[{section}] {key} is a secret: set it in the environment variable {variable}"
    field = Settings.model_fields.get(section)
    if field is not None and table_model(field.annotation) is None:
        return f"[[{section}]] cannot be set from the environment; edit the settings file"
    return None


def _parse_value(raw: str) -> Any:
    """An environment value read as a TOML value when it is one (5, true, ["a"]), else as text."""
    try:
        parsed = tomllib.loads(f"value = {raw}")
    except tomllib.TOMLDecodeError:
        return raw
    return parsed["value"] if len(parsed) == 1 else raw


def _apply_secrets(data: dict[str, Any], env: Mapping[str, str]) -> None:
    """Copy each secret that is set in the environment into its table."""
    for (section, key), variable in _SECRETS.items():
        table = data.setdefault(section, {}) if env.get(variable) else None
        if isinstance(table, dict):
            table[key] = env[variable]


def _validate(
    data: dict[str, Any], origins: Mapping[tuple[str, ...], str], label: str
) -> tuple[Settings | None, list[str]]:
    """The settings, or None and one problem per invalid key."""
    # Strict JSON validation: TOML arrays become tuples, but "15" never passes for 15.
    try:
        return Settings.model_validate_json(json.dumps(data, default=str), strict=True), []
    except ValidationError as error:
        found = (describe_error(e, Settings, data, origins, label) for e in error.errors())
        return None, list(dict.fromkeys(found))


def _connection_problems(settings: Settings, label: str) -> list[str]:
    """What the chosen CRM connection still needs, such as a secret that is not set."""
    kind = settings.crm.kind
    connection: SalesforceSettings | HubSpotSettings | SandboxSettings = getattr(settings, kind)
    return [f"{label}: [{kind}] {phrase}" for phrase in connection.problems()]


def render_settings(settings: Settings) -> str:
    """The effective settings as a TOML file; a secret shows only whether its variable is set."""
    hidden = {section: {k for table, k in _SECRETS if table == section} for section, _ in _SECRETS}
    data = settings.model_dump(mode="json", exclude_none=True, exclude=hidden)
    lines = [f"{name} = []" for name, value in data.items() if value == []]
    for name, value in data.items():
        if isinstance(value, dict):
            lines += _table_lines(name, value, _secret_notes(settings, name))
        elif value:
            lines += _array_lines(name, value)
    return "\n".join(lines)


def _table_lines(path: str, table: Mapping[str, Any], notes: Sequence[str]) -> list[str]:
    """`[path]`, its notes and values, then any arrays of tables nested in it."""
    lines = [f"[{path}]", *notes]
    arrays = {}
    for key, value in table.items():
        if isinstance(value, list) and value and isinstance(value[0], dict):
            arrays[key] = value
        else:
            lines.append(f"{key} = {toml_value(value)}")
    lines.append("")
    for key, items in arrays.items():
        lines += _array_lines(f"{path}.{key}", items)
    return lines


def _array_lines(path: str, items: Sequence[Mapping[str, Any]]) -> list[str]:
    """One `[[path]]` block per item."""
    lines: list[str] = []
    for item in items:
        lines += [f"[[{path}]]", *(f"{k} = {toml_value(v)}" for k, v in item.items()), ""]
    return lines


def _secret_notes(settings: Settings, section: str) -> list[str]:
    """A comment per secret of a table saying whether its environment variable is set."""
    model = getattr(settings, section)
    return [
        f"# {key}: {'set' if getattr(model, key) is not None else 'not set'} "
        f"(environment variable {variable})"
        for (table, key), variable in _SECRETS.items()
        if table == section
    ]
