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
