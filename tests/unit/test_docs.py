"""The README documents every setting, and the two set-up commands."""

from __future__ import annotations

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
