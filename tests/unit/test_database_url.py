"""Database URLs as operators write them: the driver each scheme gets, and the ones refused, without echoing them."""

from __future__ import annotations

import re

import pytest

from wagate.errors import ConfigError
from wagate.store import describe_failure, driver_url, shown_url


@pytest.mark.parametrize(
    ("given", "opened"),
    [
        ("postgresql://app:pw@db.example:5433/wagate", "postgresql+asyncpg://app:pw@db.example:5433/wagate"),
        ("postgres://app@db.example/wagate", "postgresql+asyncpg://app@db.example/wagate"),
        ("postgresql+asyncpg://app@db.example/wagate", "postgresql+asyncpg://app@db.example/wagate"),
        ("postgres://app@db.example/wagate?sslmode=require", "postgresql+asyncpg://app@db.example/wagate?ssl=require"),
        ("sqlite:///data/wagate.db", "sqlite+aiosqlite:///data/wagate.db"),
        ("sqlite+aiosqlite:////var/lib/wagate/wagate.db", "sqlite+aiosqlite:////var/lib/wagate/wagate.db"),
        ("postgresql://app:p%40ss@db.example/wagate", "postgresql+asyncpg://app:p%40ss@db.example/wagate"),
    ],
)
def test_each_scheme_gets_its_driver(given: str, opened: str) -> None:
    assert driver_url(given) == opened


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ("mysql://app:hunter2@db.example/wagate", "unsupported database 'mysql'"),
        ("postgresql+psycopg://app:hunter2@db.example/wagate", "unsupported database 'postgresql+psycopg'"),
        ("postgresql://app:hunter2@db.example:54x32/wagate", "malformed database URL"),
        ("postgresql://app:hunter2@db.example:99999/wagate", "port 99999 is not in 1-65535"),
        ("app:hunter2 at db.example", "malformed database URL"),
        ("sqlite+aiosqlite:///", "a SQLite URL names its file"),
    ],
)
def test_a_url_that_cannot_work_is_refused_without_repeating_it(given: str, message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)) as refused:
        driver_url(given)
    assert "hunter2" not in str(refused.value)
    assert "sqlite:///PATH or postgresql://USER" in str(refused.value) or "port" in str(refused.value)


def test_a_url_is_shown_without_its_password() -> None:
    assert shown_url("postgresql://app:hunter2@db.example/wagate") == "postgresql://app:***@db.example/wagate"
    assert shown_url("app:hunter2@db.example:x/y") == "(malformed)"


def test_a_failure_is_told_by_its_innermost_cause() -> None:
    outer = RuntimeError("the database cannot be reached")
    outer.__cause__ = ConnectionRefusedError(111, "Connect call failed ('127.0.0.1', 1)")
    assert describe_failure(outer) == "Connection refused"
    assert describe_failure(FileNotFoundError(2, "No such file", "/srv/x")) == "No such file or directory: /srv/x"
    assert describe_failure(ValueError("first line\nsecond line")) == "first line"
