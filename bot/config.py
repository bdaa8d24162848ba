"""Settings: ``app.yaml`` + environment -> validated :class:`Settings`.

This is the only module that reads ``os.environ``. Order of precedence (last wins): defaults, ``app.yaml``,
``BLENDWISE_*`` environment variables (``BLENDWISE_DATABASE_URL``, or ``BLENDWISE_DIGEST__HOUR`` for a nested key),
then command-line flags. ``${VAR}`` in the file is replaced from the environment. Secrets (tokens, signing
secrets, API keys) may only come from the environment: a literal secret in the file is refused, because app.yaml is
meant to be committed.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from datetime import time
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from bot.durations import parse_duration
from bot.errors import ConfigError
from bot.journeys.model import ClockTime, check_tz

DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
SECRET_KEYS = {"bot_token", "signing_secret", "app_token", "client_secret", "token", "api_key", "password"}
_VAR = re.compile(r"\$\{([A-Z0-9_]+)\}")


Platform = Literal["console", "slack", "discord"]


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


class SlackSettings(_Section):
    bot_token: SecretStr | None = None
    signing_secret: SecretStr | None = None
    app_token: SecretStr | None = None
    client_id: str | None = None
    client_secret: SecretStr | None = None
    api_url: str | None = None
    port: int = Field(default=3000, ge=1, le=65535)
    workspace_rate: float = Field(default=5.0, gt=0)
    per_channel_interval: float = Field(default=1.0, ge=0)


class WebSettings(_Section):
    """The HTTP tier (``/healthz``, ``/metrics`` and the platforms' routes such as ``/slack/events``).

    ``host`` defaults to loopback: a fresh install exposes nothing until someone decides to (production runs behind
    a TLS-terminating proxy on the same host, or sets ``host: 0.0.0.0`` deliberately). ``port`` defaults to
    ``slack.port`` (3000), which earlier versions used for the Slack endpoint.
    """

    host: str = "127.0.0.1"
    port: int | None = Field(default=None, ge=0, le=65535)


class DiscordSettings(_Section):
    token: SecretStr | None = None
    guild_ids: list[str] = Field(default_factory=list)
    cohort_channels: dict[str, str] = Field(default_factory=dict)
    lead_roles: list[str] = Field(default_factory=lambda: ["Cohort Lead"])
    admin_roles: list[str] = Field(default_factory=lambda: ["Learning Admin"])
    api_url: str | None = None
    gateway_url: str | None = None
    voice_min_minutes: float = Field(default=10, ge=0)
    voice_channel: str | None = None
    read_message_content: bool = False


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


class Settings(_Section):
    database_url: str = "sqlite:///blendwise.db"
    content_dir: Path = Path("content")
    timezone: str = "UTC"
    working_hours: WorkingHours = Field(default_factory=WorkingHours)
    quiet_hours: QuietHours | None = Field(default_factory=QuietHours)
    nudges: Nudges = Field(default_factory=Nudges)
    digest: Digest = Field(default_factory=Digest)
    sender: Sender = Field(default_factory=Sender)
    admins: list[str] = Field(default_factory=list)
    platforms: list[Platform] = Field(default_factory=lambda: list[Platform](["console"]))
    slack: SlackSettings = Field(default_factory=SlackSettings)
    web: WebSettings = Field(default_factory=WebSettings)
    discord: DiscordSettings = Field(default_factory=DiscordSettings)
    llm: LLMSettings = Field(default_factory=LLMSettings)
    lrs: LRSSettings = Field(default_factory=LRSSettings)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    #: ``json``: one JSON object a line (time, level, logger, message, exception), for log shippers.
    log_format: Literal["text", "json"] = "text"

    @field_validator("timezone")
    @classmethod
    def _tz(cls, value: str) -> str:
        return check_tz(value)

    @field_validator("admins")
    @classmethod
    def _admins(cls, value: list[str]) -> list[str]:
        for entry in value:
            if ":" not in entry:
                raise ValueError(f"admin '{entry}' must be written platform:user_id, e.g. slack:U024BE7LH")
        return value


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


def _refuse_literal_secrets(raw: Any, path: str = "") -> None:
    if isinstance(raw, dict):
        for k, v in raw.items():
            key_path = f"{path}.{k}" if path else str(k)
            if k in SECRET_KEYS and isinstance(v, str) and v and not _VAR.fullmatch(v.strip()):
                raise ConfigError(key_path, "secrets must come from the environment; write ${ENV_VAR} instead")
            _refuse_literal_secrets(v, key_path)


def _env_overrides(env: Mapping[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, value in env.items():
        if not name.startswith("BLENDWISE_") or name.startswith("BLENDWISE_TEST_"):
            continue
        parts = name[len("BLENDWISE_") :].lower().split("__")
        if parts[0] not in Settings.model_fields:
            continue  # e.g. BLENDWISE_CONFIG, or a ${BLENDWISE_...} variable that app.yaml substitutes itself
        node = out
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        leaf: Any = value
        if parts[-1] in ("platforms", "admins", "guild_ids", "days", "session_reminders"):
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


def _secret_env(env: Mapping[str, str]) -> dict[str, Any]:
    """Conventional platform variables, so a bare ``SLACK_BOT_TOKEN=... blendwise run`` works."""
    mapping = {
        ("slack", "bot_token"): "SLACK_BOT_TOKEN",
        ("slack", "signing_secret"): "SLACK_SIGNING_SECRET",
        ("slack", "app_token"): "SLACK_APP_TOKEN",
        ("slack", "client_id"): "SLACK_CLIENT_ID",
        ("slack", "client_secret"): "SLACK_CLIENT_SECRET",
        ("slack", "api_url"): "SLACK_API_URL",
        ("discord", "token"): "DISCORD_TOKEN",
        ("discord", "api_url"): "DISCORD_API_URL",
        ("discord", "gateway_url"): "DISCORD_GATEWAY_URL",
        ("llm", "api_key"): "OPENAI_API_KEY",
        ("llm", "base_url"): "OPENAI_BASE_URL",
        ("lrs", "password"): "BLENDWISE_LRS_PASSWORD",
    }
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
) -> Settings:
    """Load and validate settings.

    Args:
        path: app.yaml; ``None`` means ``./app.yaml`` if it exists, else defaults only.
        env: the environment (``os.environ`` by default; tests pass their own).
        overrides: values from command-line flags, which win over everything.

    Raises:
        ConfigError: naming the key at fault.
    """
    env = os.environ if env is None else env
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
        _refuse_literal_secrets(loaded)
        raw = _substitute(loaded, env, "")
    elif explicit:
        raise ConfigError("--config", f"{path} does not exist")
    raw = _merge(_merge(_merge(raw, _secret_env(env)), _env_overrides(env)), dict(overrides or {}))
    try:
        settings = Settings.model_validate(raw)
    except ValidationError as exc:
        raise _format_error(exc) from None
    if not settings.content_dir.is_absolute() and path.exists():
        settings.content_dir = (path.parent / settings.content_dir).resolve()
    return settings
