"""The README documents every setting, and the two set-up commands."""

from __future__ import annotations

import re
from pathlib import Path

from wagate.config import Settings

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()


def test_every_setting_is_documented() -> None:
    missing = [f"WAGATE_{name.upper()}" for name in Settings.model_fields if f"`WAGATE_{name.upper()}`" not in README]
    assert missing == []


def test_readme_opens_with_the_two_commands() -> None:
    head = README[:1500]
    assert "make run" in head
    assert "make test" in head


def test_readme_names_every_service_the_tests_use() -> None:
    tests = Path(__file__).resolve().parents[1]
    variables = {
        name for path in tests.rglob("*.py") for name in re.findall(r'"(WAGATE_TEST_[A-Z_]+)"', path.read_text())
    }
    assert variables >= {"WAGATE_TEST_PG", "WAGATE_TEST_REDIS", "WAGATE_TEST_CHROMIUM"}
    requirements = README[README.index("Requirements:") : README.index("## A five-minute tour")]
    assert [name for name in sorted(variables) if f"`{name}" not in requirements] == []
    for service in ("PostgreSQL at `127.0.0.1:5432`", "Redis at `127.0.0.1:6379`", "Chromium at `/usr/bin/chromium`"):
        assert service in requirements
