"""Settings: overrides (the command line's options) are validated as the environment's values are."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import SecretStr, ValidationError

from tests.support.builders import make_settings
from wagate.config import describe_invalid


def test_overrides_are_validated_and_keep_everything_else(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, lease_ttl=7.0)
    changed = settings.with_overrides(port=9000, log_level="debug", host=None)
    assert (changed.port, changed.log_level, changed.host) == (9000, "DEBUG", settings.host)  # None: not given
    assert changed.lease_ttl == 7.0
    assert changed.data_dir == tmp_path
    assert isinstance(changed.admin_key, SecretStr)
    assert changed.admin_key.get_secret_value() == settings.admin_key.get_secret_value()  # type: ignore[union-attr]
    assert changed.keys == settings.keys
    assert settings.port != 9000  # a copy: the original is as it was
    with pytest.raises(ValidationError, match="less than or equal to 65535"):
        settings.with_overrides(port=99999)
    with pytest.raises(ValidationError, match="log level must be one of"):
        settings.with_overrides(log_level="loud")
    with pytest.raises(ValueError, match="no such setting: prot"):
        settings.with_overrides(prot=9000)


def test_a_bad_log_level_is_refused_from_the_environment_too(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from wagate.config import Settings

    monkeypatch.setenv("WAGATE_LOG_LEVEL", "verbose")
    with pytest.raises(ValidationError, match="log level must be one of"):
        Settings()
    monkeypatch.setenv("WAGATE_LOG_LEVEL", "warning")
    assert Settings().log_level == "WARNING"


def test_production_wants_an_admin_key_of_32_characters_or_none(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="in production the admin key must be at least 32 characters"):
        make_settings(tmp_path, env="production", admin_key="k" * 31)
    assert make_settings(tmp_path, env="production", admin_key="k" * 32).production
    assert make_settings(tmp_path, env="production", admin_key=None).admin_key is None
    assert make_settings(tmp_path, admin_key="short").admin_key is not None  # development: any key will do
    with pytest.raises(ValidationError, match="in production the admin key must"):
        make_settings(tmp_path).with_overrides(env="production")  # checked however production is reached


def test_a_refused_setting_is_named_by_its_environment_variable_never_by_its_value(tmp_path: Path) -> None:
    with pytest.raises(ValidationError) as refused:
        make_settings(tmp_path, port="eighty", lease_ttl=0, admin_key="secret-but-short", env="production")
    line = describe_invalid(refused.value)
    assert line.startswith("WAGATE_PORT: Input should be a valid integer")
    assert "; WAGATE_LEASE_TTL: Input should be greater than 0" in line
    assert "; WAGATE_ADMIN_KEY: in production the admin key must be" in line
    assert "\n" not in line
    assert "eighty" not in line
    assert "secret-but-short" not in line
    assert describe_invalid(refused.value, {"port": "--port"}).startswith("--port (WAGATE_PORT): ")


def test_engines_named_in_settings_must_exist(tmp_path: Path) -> None:
    with pytest.raises(ValidationError) as refused:
        make_settings(tmp_path, hosted_engines="neonize,bogus", default_engine="baileys")
    line = describe_invalid(refused.value)
    assert "WAGATE_HOSTED_ENGINES: unknown engine(s) bogus; known: sim, neonize" in line
    assert "WAGATE_DEFAULT_ENGINE: unknown engine 'baileys'" in line
    assert make_settings(tmp_path, hosted_engines=" SIM, neonize ").hosted_engine_names == {"sim", "neonize"}
    assert make_settings(tmp_path, hosted_engines="").hosted_engine_names == frozenset()
