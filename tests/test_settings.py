"""Settings: contract defaults, environment over file, a bad value names its key."""

from __future__ import annotations

from pathlib import Path

import pytest

from alertnet.settings import ConfigError, Settings, load_settings


def test_contract_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without configuration the service runs on SQLite and the console provider."""
    for name in ("DATABASE_URL", "HOST", "PORT", "SMS_PROVIDER", "PUBLIC_URL"):
        monkeypatch.delenv(f"ALERTNET_{name}", raising=False)
    settings = load_settings()
    assert settings.database_url == "sqlite:///alertnet.db"
    assert (settings.host, settings.port, settings.sms_provider) == ("127.0.0.1", 8080, "console")
    assert settings.effective_public_url == "http://127.0.0.1:8080"
    assert (settings.send_rate, settings.send_concurrency) == (100, 32)
    assert settings.twilio_api_base == "https://api.twilio.com"


def test_environment_beats_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The TOML file sets values; ALERTNET_* variables override them."""
    config = tmp_path / "alertnet.toml"
    config.write_text('port = 9000\nhost = "0.0.0.0"\n')
    monkeypatch.setenv("ALERTNET_PORT", "9100")
    settings = load_settings(config)
    assert (settings.host, settings.port) == ("0.0.0.0", 9100)


@pytest.mark.parametrize(
    ("env", "value", "named"),
    [
        ("ALERTNET_PORT", "eighty", "ALERTNET_PORT"),
        ("ALERTNET_PORT", "70000", "ALERTNET_PORT"),
        ("ALERTNET_SEND_RATE", "0", "ALERTNET_SEND_RATE"),
        ("ALERTNET_SMS_PROVIDER", "carrier-pigeon", "ALERTNET_SMS_PROVIDER"),
        ("ALERTNET_DATABASE_URL", "mysql://x", "ALERTNET_DATABASE_URL"),
        ("ALERTNET_PUBLIC_URL", "example.org", "ALERTNET_PUBLIC_URL"),
        ("ALERTNET_ADMIN_TOKEN", "geheim-€-token", "ALERTNET_ADMIN_TOKEN"),
    ],
)
def test_bad_value_names_key(monkeypatch: pytest.MonkeyPatch, env: str, value: str, named: str) -> None:
    """Start-up stops with the name of the variable at fault."""
    monkeypatch.setenv(env, value)
    with pytest.raises(ConfigError, match=named):
        load_settings()


def test_twilio_needs_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    """Choosing Twilio without an account names every missing variable."""
    monkeypatch.setenv("ALERTNET_SMS_PROVIDER", "twilio")
    with pytest.raises(ConfigError) as caught:
        load_settings()
    for name in ("ALERTNET_TWILIO_ACCOUNT_SID", "ALERTNET_TWILIO_AUTH_TOKEN", "ALERTNET_TWILIO_FROM"):
        assert name in str(caught.value)


def test_unknown_key_in_file(tmp_path: Path) -> None:
    """A typo in the file is an error, not a silently ignored setting."""
    config = tmp_path / "alertnet.toml"
    config.write_text("prot = 9000\n")
    with pytest.raises(ConfigError, match="ALERTNET_PROT"):
        load_settings(config)


def test_missing_and_broken_file(tmp_path: Path) -> None:
    """A config file that is missing or not TOML says so."""
    with pytest.raises(ConfigError, match="cannot read"):
        load_settings(tmp_path / "nope.toml")
    broken = tmp_path / "broken.toml"
    broken.write_text("port = = 1")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings(broken)


def test_secrets_do_not_print() -> None:
    """Tokens are SecretStr: repr and str never show them."""
    settings = Settings(admin_token="very-secret", twilio_auth_token="also-secret")  # type: ignore[arg-type]
    assert "very-secret" not in repr(settings)
    assert "also-secret" not in str(settings)


@pytest.mark.parametrize(
    ("env", "named"),
    [
        (
            "ALERTNET_SMS_PROVDER",
            "ALERTNET_SMS_PROVDER is not a setting (did you mean ALERTNET_SMS_PROVIDER?)",
        ),
        ("alertnet_prot", "ALERTNET_PROT is not a setting (did you mean ALERTNET_PORT?)"),
        ("ALERTNET_COLOUR", "ALERTNET_COLOUR is not a setting"),
    ],
)
def test_misspelt_variable_names_itself(monkeypatch: pytest.MonkeyPatch, env: str, named: str) -> None:
    """A variable alertnet does not know stops start-up instead of being ignored."""
    monkeypatch.setenv(env, "twilio")
    with pytest.raises(ConfigError) as caught:
        load_settings()
    assert named in str(caught.value)


def test_test_suite_variables_are_not_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    """ALERTNET_TEST_* belong to the test suite: the service ignores them."""
    monkeypatch.setenv("ALERTNET_TEST_DATABASE_URL", "postgresql://localhost/x")
    assert load_settings().port == 8080


@pytest.mark.parametrize(
    "name", ["ALERTNET_TWILIO_AUTH_TOKEN", "ALERTNET_ADMIN_TOKEN", "ALERTNET_PUBLIC_URL"]
)
def test_empty_value_is_unset(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    """An empty token is no token: an empty signing key would let anyone sign a webhook."""
    monkeypatch.setenv(name, " ")
    settings = load_settings()
    assert getattr(settings, name.removeprefix("ALERTNET_").lower()) is None


def test_twilio_refuses_empty_token(monkeypatch: pytest.MonkeyPatch) -> None:
    """The twilio provider with an empty auth token stops start-up, naming the variable."""
    monkeypatch.setenv("ALERTNET_SMS_PROVIDER", "twilio")
    monkeypatch.setenv("ALERTNET_TWILIO_ACCOUNT_SID", "AC" + "0" * 32)
    monkeypatch.setenv("ALERTNET_TWILIO_FROM", "+3197010000000")
    monkeypatch.setenv("ALERTNET_TWILIO_AUTH_TOKEN", "")
    with pytest.raises(ConfigError, match="ALERTNET_TWILIO_AUTH_TOKEN"):
        load_settings()


def test_an_empty_variable_keeps_its_default(monkeypatch: pytest.MonkeyPatch) -> None:
    """`ALERTNET_HOST=` (an unset variable in a unit file) is no host: the default holds, not an
    error and not every interface."""
    for name in Settings.model_fields:
        if name not in ("sms_provider", "database_url"):
            monkeypatch.setenv(f"ALERTNET_{name.upper()}", "")
    assert load_settings() == Settings()
    assert load_settings().host == "127.0.0.1"


@pytest.mark.parametrize("name", ["ALERTNET_SMS_PROVIDER", "ALERTNET_DATABASE_URL"])
def test_empty_provider_or_database_is_refused(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    """An empty provider would print every alert instead of sending it, an empty database URL give
    each process a file of its own: start-up stops, naming the variable."""
    monkeypatch.setenv(name, " ")
    with pytest.raises(ConfigError, match=f"{name} is empty"):
        load_settings()


@pytest.mark.parametrize("host", ["", "  "])
def test_empty_host_in_the_file_is_refused(tmp_path: Path, host: str) -> None:
    config = tmp_path / "alertnet.toml"
    config.write_text(f'host = "{host}"\n')
    with pytest.raises(ConfigError, match="ALERTNET_HOST"):
        load_settings(config)
