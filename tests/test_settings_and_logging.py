"""Settings from `PARCOURS_*` variables, the stored secret key, and logs free of personal data."""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog

from parcours.observability import PERSONAL_KEYS, configure_logging, redact_personal_data
from parcours.settings import SECRET_KEY_FILE, Settings, ensure_secret_key

PERSONAL_VALUES = {"email": "alice@example.be", "name": "Alice Martin", "phone": "+32470123456"}


@pytest.fixture
def environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty working directory (no `.env`) and no `PARCOURS_*` variables."""
    monkeypatch.chdir(tmp_path)
    for name in [n for n in os.environ if n.startswith("PARCOURS_")]:
        monkeypatch.delenv(name)
    return tmp_path


@pytest.fixture
def restore_logging() -> Iterator[None]:
    config = structlog.get_config()
    yield
    structlog.configure(**config)


def make_settings(directory: Path) -> Settings:
    """Settings that keep the secret key file in `directory`."""
    return Settings(secret_key_file=directory / SECRET_KEY_FILE)


def test_defaults_use_a_sqlite_file_and_euro(environment: Path) -> None:
    settings = Settings()
    assert settings.database_url == "sqlite:///parcours.db"
    assert settings.default_currency == "EUR"
    assert settings.secret_key is None


def test_settings_read_parcours_environment_variables(
    environment: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PARCOURS_DATABASE_URL", "postgresql://u@db.example/p")
    monkeypatch.setenv("PARCOURS_DEFAULT_CURRENCY", "usd")
    monkeypatch.setenv("PARCOURS_DEFAULT_TIMEZONE", "Europe/Amsterdam")
    monkeypatch.setenv("PARCOURS_LOG_LEVEL", "WARNING")
    settings = Settings()
    assert settings.database_url == "postgresql://u@db.example/p"
    assert settings.default_currency == "USD"
    assert settings.default_timezone == "Europe/Amsterdam"
    assert settings.log_level == "WARNING"


def test_settings_read_a_dotenv_file_in_the_working_directory(environment: Path) -> None:
    (environment / ".env").write_text("PARCOURS_DEFAULT_CURRENCY=jpy\n", encoding="utf-8")
    assert Settings().default_currency == "JPY"


def test_ensure_secret_key_writes_a_private_key_file_once(environment: Path) -> None:
    settings = make_settings(environment)
    assert settings.resolved_secret_key() is None
    assert ensure_secret_key(settings) is True
    key_file = environment / SECRET_KEY_FILE
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    stored = key_file.read_text(encoding="ascii").strip()
    assert len(stored) >= 32

    resolved = settings.resolved_secret_key()
    assert resolved is not None and resolved.get_secret_value() == stored
    assert stored not in repr(settings) and stored not in str(resolved)

    assert ensure_secret_key(settings) is False
    assert key_file.read_text(encoding="ascii").strip() == stored


def test_each_generated_key_is_different(tmp_path: Path) -> None:
    keys = []
    for name in ("a", "b"):
        settings = make_settings(tmp_path / name)
        ensure_secret_key(settings)
        resolved = settings.resolved_secret_key()
        assert resolved is not None
        keys.append(resolved.get_secret_value())
    assert keys[0] != keys[1]


def test_secret_key_from_the_environment_wins_over_the_file(
    environment: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ensure_secret_key(make_settings(environment))
    monkeypatch.setenv("PARCOURS_SECRET_KEY", "from-the-environment")
    settings = make_settings(environment)
    resolved = settings.resolved_secret_key()
    assert resolved is not None and resolved.get_secret_value() == "from-the-environment"


def test_no_key_file_is_written_when_the_environment_provides_the_key(
    environment: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PARCOURS_SECRET_KEY", "from-the-environment")
    settings = make_settings(environment)
    assert ensure_secret_key(settings) is False
    assert not (environment / SECRET_KEY_FILE).exists()


@pytest.mark.usefixtures("restore_logging")
def test_json_logs_redact_personal_fields(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging(json=True)
    structlog.get_logger("test").info("debtor.contacted", debtor_ref="D1", **PERSONAL_VALUES)
    err = capsys.readouterr().err
    [line] = err.splitlines()
    record = json.loads(line)
    assert record["event"] == "debtor.contacted"
    assert record["debtor_ref"] == "D1"
    assert record["level"] == "info"
    for key, value in PERSONAL_VALUES.items():
        assert record[key] == "[redacted]"
        assert value not in err


@pytest.mark.usefixtures("restore_logging")
def test_console_logs_redact_personal_fields_too(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging(json=False)
    structlog.get_logger("test").warning("debtor.contacted", debtor_ref="D1", **PERSONAL_VALUES)
    err = capsys.readouterr().err
    assert "[redacted]" in err and "D1" in err
    for value in PERSONAL_VALUES.values():
        assert value not in err


@pytest.mark.usefixtures("restore_logging")
def test_log_level_filters_lower_levels(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("WARNING", json=True)
    logger = structlog.get_logger("test")
    logger.info("quiet")
    logger.warning("loud")
    lines = capsys.readouterr().err.splitlines()
    assert [json.loads(line)["event"] for line in lines] == ["loud"]


@pytest.mark.usefixtures("restore_logging")
def test_a_lower_case_log_level_from_the_environment_is_accepted(
    environment: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`PARCOURS_LOG_LEVEL=debug` is how people write it; every CLI command configures logging."""
    monkeypatch.setenv("PARCOURS_LOG_LEVEL", "debug")
    configure_logging(Settings().log_level, json=True)
    structlog.get_logger("test").debug("shown")
    assert [json.loads(line)["event"] for line in capsys.readouterr().err.splitlines()] == ["shown"]


@pytest.mark.parametrize("key", sorted(PERSONAL_KEYS))
def test_every_personal_key_is_redacted_and_other_keys_are_kept(key: str) -> None:
    event = redact_personal_data(None, "info", {"event": "e", key: "value", "case_ref": "C-1"})
    assert event == {"event": "e", key: "[redacted]", "case_ref": "C-1"}
