"""The service's configuration: one frozen model, loaded once at the edge."""

from __future__ import annotations

import difflib
import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr, StringConstraints, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

ENV_PREFIX = "ALERTNET_"
#: Variables of the test suite (`tests/databases.py`), not of the service.
TEST_PREFIX = "ALERTNET_TEST_"


class ConfigError(Exception):
    """A configuration value is missing or wrong; the message names the key."""


class Settings(BaseSettings):
    """Every `ALERTNET_*` variable of the contract, with its default."""

    # An empty variable is the same as none (`ALERTNET_HOST=` from an unset variable in a unit or
    # compose file): the default holds, instead of an error or, for the host, every interface.
    # Except where the default would quietly send the alerts elsewhere (`_MUST_NOT_BE_EMPTY`).
    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, frozen=True, extra="forbid", env_ignore_empty=True
    )

    database_url: str = "sqlite:///alertnet.db"
    #: Not empty: an empty host would listen on every interface.
    host: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)] = "127.0.0.1"
    port: int = Field(8080, ge=1, le=65535)
    #: The URL Twilio sees; signatures and callback URLs are built from it.
    public_url: str | None = None
    admin_token: SecretStr | None = None
    sms_provider: Literal["console", "twilio"] = "console"
    twilio_account_sid: str | None = None
    twilio_auth_token: SecretStr | None = None
    twilio_from: str | None = None
    twilio_messaging_service_sid: str | None = None
    twilio_api_base: str = "https://api.twilio.com"
    #: Messages (segments) per second handed to the provider, all workers together.
    send_rate: float = Field(100.0, gt=0, le=10_000)
    #: Provider requests in flight at once.
    send_concurrency: int = Field(32, ge=1, le=1024)
    #: Seconds a claimed outbox job stays with its worker; after a crash it is sent again after this.
    outbox_lease_s: float = Field(120.0, ge=1, le=3600)
    #: An incident with no new signal for this long resolves itself as "expired".
    incident_expiry_s: int = Field(12 * 3600, ge=60, le=30 * 24 * 3600)
    #: Days after which phone numbers on signals and messages are erased (members keep theirs).
    retention_days: int = Field(180, ge=1, le=3650)
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    #: "auto": readable on a terminal, JSON otherwise.
    log_format: Literal["auto", "json", "console"] = "auto"
    #: Migrate the database when the service starts (the contract's default).
    migrate_on_start: bool = True

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The environment beats the TOML file, which arrives as init values.
        return (env_settings, init_settings)

    @field_validator(
        "public_url",
        "admin_token",
        "twilio_account_sid",
        "twilio_auth_token",
        "twilio_from",
        "twilio_messaging_service_sid",
        mode="before",
    )
    @classmethod
    def _empty_is_unset(cls, value: Any) -> Any:
        # `ALERTNET_TWILIO_AUTH_TOKEN=` (say, from an unset variable in compose) must not become a
        # signing key anyone knows: empty is the same as not set.
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("admin_token")
    @classmethod
    def _header_safe(cls, token: SecretStr | None) -> SecretStr | None:
        # It travels in an HTTP header: anything but printable ASCII could never be sent to match.
        if token is not None and not (
            token.get_secret_value().isascii() and token.get_secret_value().isprintable()
        ):
            raise ValueError("must be printable ASCII (it is sent in an Authorization header)")
        return token

    @field_validator("database_url")
    @classmethod
    def _known_database(cls, url: str) -> str:
        if not url.startswith(("sqlite:", "sqlite+", "postgresql:", "postgresql+", "postgres:")):
            raise ValueError("must be a sqlite:/// or postgresql:// URL")
        return url

    @field_validator("public_url", "twilio_api_base")
    @classmethod
    def _http_url(cls, url: str | None) -> str | None:
        if url is None:
            return None
        if not url.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return url.rstrip("/")

    @model_validator(mode="after")
    def _twilio_complete(self) -> Settings:
        if self.sms_provider == "twilio":
            missing = [
                name for name in ("twilio_account_sid", "twilio_auth_token") if getattr(self, name) is None
            ]
            if not (self.twilio_from or self.twilio_messaging_service_sid):
                missing.append("twilio_from")
            if missing:
                keys = ", ".join(ENV_PREFIX + m.upper() for m in missing)
                raise ValueError(f"the twilio provider needs {keys}")
        return self

    @property
    def effective_public_url(self) -> str:
        """The public base URL, defaulting to http://HOST:PORT."""
        return self.public_url or f"http://{self.host}:{self.port}"


#: Empty, these would not fall back to their defaults unnoticed: the console provider prints every
#: alert instead of sending it, and the default database is a file of this process's own.
_MUST_NOT_BE_EMPTY = ("sms_provider", "database_url")


def load_settings(config: Path | None = None, **overrides: Any) -> Settings:
    """Settings from an optional TOML file, then the environment, then overrides.

    Raises ConfigError naming the offending key, so start-up can stop with it.
    """
    _refuse_unknown_variables(os.environ)
    for name in _MUST_NOT_BE_EMPTY:
        variable = ENV_PREFIX + name.upper()
        if os.environ.get(variable, "x").strip() == "":
            raise ConfigError(f"{variable} is empty: give it a value, or unset it for the default")
    values: dict[str, Any] = {}
    if config is not None:
        try:
            values = tomllib.loads(config.read_text(encoding="utf-8"))
        except OSError as exc:
            raise ConfigError(f"cannot read config file {config}: {exc.strerror}") from exc
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file {config} is not valid TOML: {exc}") from exc
    values.update(overrides)
    try:
        settings = Settings(**values)
    except ValidationError as exc:
        raise ConfigError(_describe(exc)) from exc
    if overrides:
        # Explicit overrides (CLI flags) beat the environment too.
        settings = settings.model_copy(update=overrides)
    return settings


def _refuse_unknown_variables(environ: Mapping[str, str]) -> None:
    """A misspelt variable is an error: ignored, ALERTNET_SMS_PROVDER=twilio would leave the console
    provider printing every alert instead of sending it."""
    known = {ENV_PREFIX + name.upper() for name in Settings.model_fields}
    unknown = sorted(
        name
        for name in (key.upper() for key in environ)
        if name.startswith(ENV_PREFIX) and name not in known and not name.startswith(TEST_PREFIX)
    )
    if unknown:
        raise ConfigError("; ".join(f"{name} is not a setting{_guess(name, known)}" for name in unknown))


def _guess(name: str, known: set[str]) -> str:
    close = difflib.get_close_matches(name, sorted(known), n=1)
    return f" (did you mean {close[0]}?)" if close else ""


def _describe(exc: ValidationError) -> str:
    lines = []
    for error in exc.errors():
        key = ".".join(str(part) for part in error["loc"])
        name = f"{ENV_PREFIX}{key.upper()} (or `{key}` in the config file)" if key else "configuration"
        lines.append(f"{name}: {error['msg']}")
    return "invalid configuration: " + "; ".join(lines)
