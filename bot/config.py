"""Settings: ``app.yaml`` + environment -> validated :class:`Settings`.

This is the only module that reads ``os.environ``. Order of precedence (last wins): defaults, ``app.yaml``,
``BLENDWISE_*`` environment variables (``BLENDWISE_DATABASE_URL``, or ``BLENDWISE_DIGEST__HOUR`` for a nested key),
then command-line flags. ``${VAR}`` in the file is replaced from the environment. Secrets (tokens, signing
secrets, API keys) may only come from the environment: a literal secret in the file is refused, because app.yaml is
meant to be committed.

Platform sections (``slack:``, ``discord:``...) are not defined here: each adapter package registers its model and
its conventional variables with :mod:`bot.platforms`, and :func:`settings_model` adds one section per registered
platform, so ``platforms:`` and those sections are validated against what is installed in the code base.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from datetime import time
from pathlib import Path
from typing import Any, ClassVar, Literal, Self, TypeVar, cast, get_args, get_origin

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    create_model,
    field_validator,
    model_validator,
)

from bot.durations import parse_duration
from bot.errors import ConfigError
from bot.journeys.model import ClockTime, check_tz
from bot.platforms import PlatformRegistry, registered

DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_VAR = re.compile(r"\$\{([A-Z0-9_]+)\}")
#: Conventional variables of the core's own sections; platforms declare theirs in their :class:`PlatformSpec`.
CORE_ENV = {
    ("llm", "api_key"): "OPENAI_API_KEY",
    ("llm", "base_url"): "OPENAI_BASE_URL",
    ("lrs", "password"): "BLENDWISE_LRS_PASSWORD",
}
_M = TypeVar("_M", bound=BaseModel)


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class WorkingHours(_Section):
    start: ClockTime = time(9, 0)
    end: ClockTime = time(17, 30)
    days: list[str] = Field(default_factory=lambda: ["mon", "tue", "wed", "thu", "fri"])

    @field_validator("days")
    @classmethod
    def _days(cls, value: list[str]) -> list[str]:
        bad = [d for d in value if d.lower()[:3] not in DAY_NAMES]
        if bad or not value:
            raise ValueError(f"days must be names like mon, tue ... sun (got {bad or 'nothing'})")
        return [d.lower()[:3] for d in value]

    @model_validator(mode="after")
    def _order(self) -> WorkingHours:
        if self.end <= self.start:
            raise ValueError("working_hours.end must be after working_hours.start")
        return self

    @property
    def weekdays(self) -> frozenset[int]:
        return frozenset(DAY_NAMES.index(d) for d in self.days)


class QuietHours(_Section):
    start: ClockTime = time(20, 0)
    end: ClockTime = time(8, 0)


class Nudges(_Section):
    reminders: bool = True
    auto_pause_after: int = Field(default=3, ge=1, le=50)
    session_reminders: list[str] = Field(default_factory=lambda: ["24h", "15m"])
    snooze_default: str = "2h"
    max_reinforcement_per_week: int = Field(default=3, ge=0, le=50)

    @field_validator("session_reminders")
    @classmethod
    def _durations(cls, value: list[str]) -> list[str]:
        for v in value:
            parse_duration(v)
        return value

    @field_validator("snooze_default")
    @classmethod
    def _snooze(cls, value: str) -> str:
        parse_duration(value)
        return value


class Digest(_Section):
    enabled: bool = True
    day: str = "mon"
    at: ClockTime = time(9, 0)
    include_indirect: bool = False

    @field_validator("day")
    @classmethod
    def _day(cls, value: str) -> str:
        if value.lower()[:3] not in DAY_NAMES:
            raise ValueError(f"'{value}' is not a day name (mon ... sun)")
        return value.lower()[:3]


class Sender(_Section):
    batch: int = Field(default=200, ge=1, le=10000)
    max_attempts: int = Field(default=8, ge=1, le=100)
    #: The planning tick and the drain are separate jobs, so a backlog never delays planning.
    tick_seconds: float = Field(default=30, gt=0, le=3600)
    drain_seconds: float = Field(default=1, gt=0, le=3600)
    #: Sends in flight at once per worker (different destinations only; one destination is always in order).
    concurrency: int = Field(default=16, ge=1, le=256)
    #: A claim's lease; renewed while sending, reclaimed by any worker once expired.
    lease_seconds: float = Field(default=120, ge=5, le=3600)
    #: On SIGTERM, how long in-flight sends may finish before the remaining claims are released.
    grace_seconds: float = Field(default=10, ge=0, le=600)


class WebSettings(_Section):
    """The HTTP tier (``/healthz``, ``/metrics`` and the platforms' routes such as ``/slack/events``).

    ``host`` defaults to loopback: a fresh install exposes nothing until someone decides to (production runs behind
    a TLS-terminating proxy on the same host, or sets ``host: 0.0.0.0`` deliberately). ``port`` defaults to the ``port``
    of the first configured platform's section that has one (``slack.port``, which earlier versions used for the
    Slack endpoint), else 3000.
    """

    host: str = "127.0.0.1"
    port: int | None = Field(default=None, ge=0, le=65535)


class LLMSettings(_Section):
    base_url: str | None = None
    model: str = "gpt-4o-mini"
    api_key: SecretStr | None = None
    timeout_seconds: float = Field(default=60, gt=0)


class LRSSettings(_Section):
    endpoint: str | None = None
    username: str | None = None
    password: SecretStr | None = None
    use_mbox: bool = False
    batch: int = Field(default=100, ge=1, le=1000)
    #: Base IRI of Blendwise activity ids (programs, steps, questions, sessions, cohorts) in xAPI statements.
    activity_base: str = "https://blendwise.local/xapi"
    timeout_seconds: float = Field(default=15, gt=0, le=300)


_EMAIL = re.compile(r"^[^@\s<>\"(),:;\[\]]+@([A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+)$")
_DOMAIN = re.compile(r"^(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$")
#: The UID domain of an installation that configured neither ``live.ics_domain`` nor ``live.organizer``.
FALLBACK_ICS_DOMAIN = "blendwise.invalid"


class LiveSettings(_Section):
    """Live sessions as calendar events.

    ``organizer`` is the ``ORGANIZER`` of every ``.ics`` invite when no lead of the cohort has an email address.
    ``ics_domain`` is the right-hand side of every calendar UID (``<cohort>-<step>@<domain>``): RFC 5545 asks for
    UIDs that are unique worldwide, so two installations must not share one. It defaults to the organizer's domain.
    """

    organizer: str | None = None
    ics_domain: str | None = None

    @field_validator("organizer")
    @classmethod
    def _organizer(cls, value: str | None) -> str | None:
        if value is not None and not _EMAIL.match(value.strip()):
            raise ValueError(f"'{value}' is not an email address (e.g. live-sessions@example.com)")
        return value.strip() if value else None

    @field_validator("ics_domain")
    @classmethod
    def _domain(cls, value: str | None) -> str | None:
        if value is not None and not _DOMAIN.match(value.strip()):
            raise ValueError(f"'{value}' is not a domain name (e.g. learning.example.com)")
        return value.strip().lower() if value else None

    @property
    def uid_domain(self) -> str:
        """The domain calendar UIDs use: ``ics_domain``, else the organizer's domain, else ``blendwise.invalid``."""
        if self.ics_domain:
            return self.ics_domain
        if self.organizer:
            return self.organizer.rsplit("@", 1)[1].lower()
        return FALLBACK_ICS_DOMAIN


class Settings(_Section):
    """The core's settings. Loaded settings are an instance of the subclass :func:`settings_model` builds, which adds
    one section per registered platform; adapters read theirs with :meth:`section`."""

    #: The registered platform names ``platforms:`` may list (set on the subclass :func:`settings_model` builds).
    platform_names: ClassVar[tuple[str, ...] | None] = None

    database_url: str = "sqlite:///blendwise.db"
    content_dir: Path = Path("content")
    timezone: str = "UTC"
    working_hours: WorkingHours = Field(default_factory=WorkingHours)
    quiet_hours: QuietHours | None = Field(default_factory=QuietHours)
    nudges: Nudges = Field(default_factory=Nudges)
    digest: Digest = Field(default_factory=Digest)
    sender: Sender = Field(default_factory=Sender)
    admins: list[str] = Field(default_factory=list)
    platforms: list[str] = Field(default_factory=lambda: ["console"])
    web: WebSettings = Field(default_factory=WebSettings)
    llm: LLMSettings = Field(default_factory=LLMSettings)
    live: LiveSettings = Field(default_factory=LiveSettings)
    lrs: LRSSettings = Field(default_factory=LRSSettings)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    #: ``json``: one JSON object a line (time, level, logger, message, exception), for log shippers.
    log_format: Literal["text", "json"] = "text"

    @field_validator("timezone")
    @classmethod
    def _tz(cls, value: str) -> str:
        return check_tz(value)

    @field_validator("platforms")
    @classmethod
    def _platforms(cls, value: list[str]) -> list[str]:
        names = cls.platform_names
        if names is not None:
            for name in value:
                if name not in names:
                    raise ValueError(f"'{name}' is not a known platform (known: {', '.join(names)})")
        return value

    @classmethod
    def model_validate(cls, obj: Any, *args: Any, **kwargs: Any) -> Self:
        """Validate ``obj``; on :class:`Settings` itself, with every registered platform's section (tests and tools
        build settings from a mapping this way)."""
        if cls is Settings:
            return cast(Self, settings_model().model_validate(obj, *args, **kwargs))
        return super().model_validate(obj, *args, **kwargs)

    def section(self, name: str, model: type[_M]) -> _M:
        """The ``name:`` section as its platform's registered ``model`` (typed access for the adapter that owns it).

        Raises:
            ConfigError: no platform registered a section ``name`` of that model.
        """
        value = getattr(self, name, None)
        if not isinstance(value, model):
            raise ConfigError(name, f"no platform registered a '{name}' section")
        return value

    @field_validator("admins")
    @classmethod
    def _admins(cls, value: list[str]) -> list[str]:
        for entry in value:
            if ":" not in entry:
                raise ValueError(f"admin '{entry}' must be written platform:user_id, e.g. slack:U024BE7LH")
        return value


_MODELS: dict[tuple[int, tuple[str, ...]], type[Settings]] = {}


def settings_model(platforms: PlatformRegistry | None = None) -> type[Settings]:
    """:class:`Settings` plus one section per registered platform, with ``platforms:`` checked against them.

    Args:
        platforms: the registry (by default the one the composition root's platform packages registered into).

    Raises:
        ValueError: a platform's name is one of the core's own keys.
    """
    platforms = registered() if platforms is None else platforms
    key = (id(platforms), platforms.names)
    model = _MODELS.get(key)
    if model is None:
        sections: dict[str, Any] = {}
        for spec in platforms:
            if spec.name in Settings.model_fields:
                raise ValueError(f"platform '{spec.name}' (from {spec.owner}) clashes with the core setting of that name")
            sections[spec.name] = (spec.settings_model, Field(default_factory=spec.settings_model))
        model = create_model("Settings", __base__=Settings, **sections)
        model.platform_names = platforms.names
        _MODELS[key] = model
    return model


def _substitute(value: Any, env: Mapping[str, str], path: str) -> Any:
    if isinstance(value, dict):
        return {k: _substitute(v, env, f"{path}.{k}" if path else str(k)) for k, v in value.items()}
    if isinstance(value, list):
        return [_substitute(v, env, f"{path}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, str):
        missing: list[str] = []

        def repl(match: re.Match[str]) -> str:
            name = match.group(1)
            if name not in env:
                missing.append(name)
                return ""
            return env[name]

        out = _VAR.sub(repl, value)
        if missing:
            # An unset secret simply means "this platform is not configured": keep it empty rather than fail,
            # so one app.yaml serves every environment. The adapter refuses to start without it.
            return None if out == "" else out
        return out
    return value


def _refuse_literal_secrets(raw: Any, model: type[BaseModel], path: str = "") -> None:
    """Refuse a secret written into app.yaml. A setting is secret when its model types it ``SecretStr`` — the core's
    sections and every platform's alike, so a platform's new secret needs no list kept here."""
    if not isinstance(raw, dict):
        return
    for k, v in raw.items():
        key_path = f"{path}.{k}" if path else str(k)
        info = model.model_fields.get(str(k))
        if info is None:
            continue  # pydantic names the unknown key
        if _holds(info.annotation, SecretStr):
            if isinstance(v, str) and v and not _VAR.fullmatch(v.strip()):
                raise ConfigError(key_path, "secrets must come from the environment; write ${ENV_VAR} instead")
            continue
        for sub in _models_in(info.annotation):
            _refuse_literal_secrets(v, sub, key_path)


def _holds(annotation: Any, kind: type) -> bool:
    """Whether ``kind`` appears in ``annotation`` (``SecretStr | None`` holds ``SecretStr``)."""
    return annotation is kind or any(_holds(arg, kind) for arg in get_args(annotation))


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    """The pydantic models a field's value may be (a section, or an optional one)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for arg in get_args(annotation) for m in _models_in(arg)]


def _is_list(model: type[BaseModel], parts: list[str]) -> bool:
    """Whether the setting at ``parts`` is a list, so its variable is read comma-separated."""
    node: type[BaseModel] = model
    for part in parts[:-1]:
        info = node.model_fields.get(part)
        sub = info.annotation if info is not None else None
        if not (isinstance(sub, type) and issubclass(sub, BaseModel)):
            return False
        node = sub
    info = node.model_fields.get(parts[-1])
    return info is not None and get_origin(info.annotation) is list


def _env_overrides(env: Mapping[str, str], model: type[Settings]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, value in env.items():
        if not name.startswith("BLENDWISE_") or name.startswith("BLENDWISE_TEST_"):
            continue
        parts = name[len("BLENDWISE_") :].lower().split("__")
        if parts[0] not in model.model_fields:
            continue  # e.g. BLENDWISE_CONFIG, or a ${BLENDWISE_...} variable that app.yaml substitutes itself
        node = out
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        leaf: Any = value
        if _is_list(model, parts):
            leaf = [v.strip() for v in value.split(",") if v.strip()]
        node[parts[-1]] = leaf
    return out


def _merge(base: dict[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    for k, v in extra.items():
        if isinstance(v, Mapping) and isinstance(base.get(k), dict):
            _merge(base[k], v)
        else:
            base[k] = v
    return base


def _secret_env(env: Mapping[str, str], platforms: PlatformRegistry) -> dict[str, Any]:
    """Conventional variables, so a bare ``SLACK_BOT_TOKEN=... blendwise run`` works (platforms declare theirs)."""
    mapping = dict(CORE_ENV)
    for spec in platforms:
        mapping.update({(spec.name, key): var for key, var in spec.env.items()})
    out: dict[str, Any] = {}
    for (section, key), var in mapping.items():
        if env.get(var):
            out.setdefault(section, {})[key] = env[var]
    return out


def _format_error(exc: ValidationError) -> ConfigError:
    err = exc.errors()[0]
    key = ".".join(str(p) for p in err["loc"]) or "(top level)"
    msg = str(err["msg"]).removeprefix("Value error, ")
    if err["type"] == "extra_forbidden":
        msg = "unknown key"
    return ConfigError(key, msg)


def load_settings(
    path: Path | None = None,
    *,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
    platforms: PlatformRegistry | None = None,
) -> Settings:
    """Load and validate settings.

    Args:
        path: app.yaml; ``None`` means ``./app.yaml`` if it exists, else defaults only.
        env: the environment (``os.environ`` by default; tests pass their own).
        overrides: values from command-line flags, which win over everything.
        platforms: the platforms whose sections and variables are known (by default every registered one).

    Raises:
        ConfigError: naming the key at fault.
    """
    env = os.environ if env is None else env
    platforms = registered() if platforms is None else platforms
    model = settings_model(platforms)
    if path is None and env.get("BLENDWISE_CONFIG"):
        path = Path(env["BLENDWISE_CONFIG"])
    explicit = path is not None
    path = path or Path("app.yaml")
    raw: dict[str, Any] = {}
    if path.exists():
        try:
            loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f"line {mark.line + 1}" if mark else "(file)"
            raise ConfigError(where, f"{path} is not valid YAML") from None
        except UnicodeDecodeError:
            raise ConfigError("(file)", f"{path} is not UTF-8 text") from None
        if loaded is None:
            loaded = {}
        if not isinstance(loaded, dict):
            raise ConfigError("(top level)", f"{path} must hold a mapping of settings")
        _refuse_literal_secrets(loaded, model)
        raw = _substitute(loaded, env, "")
    elif explicit:
        raise ConfigError("--config", f"{path} does not exist")
    raw = _merge(_merge(_merge(raw, _secret_env(env, platforms)), _env_overrides(env, model)), dict(overrides or {}))
    try:
        settings = model.model_validate(raw)
    except ValidationError as exc:
        raise _format_error(exc) from None
    if not settings.content_dir.is_absolute() and path.exists():
        settings.content_dir = (path.parent / settings.content_dir).resolve()
    return settings
