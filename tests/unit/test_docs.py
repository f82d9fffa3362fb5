"""The README gives the two set-up commands and the services the tests use, and links into the docs site; the site
tells what every setting is for (the configuration page's table, generated from the settings class, is checked in
``test_docs_site``)."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import urlsplit

from wagate.config import Settings, env_name

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()


def test_every_setting_is_named_on_a_page_written_by_hand() -> None:
    # The generated table says what a setting takes; a page says when it matters (the Markdown sources hold no table:
    # it is written at build time).
    pages = "\n".join(page.read_text(encoding="utf-8") for page in sorted((ROOT / "docs").glob("*.md")))
    missing = [
        env_name(name)
        for name in Settings.model_fields
        if not re.search(rf"(?<![A-Z0-9_]){env_name(name)}(?![A-Z0-9_])", pages)
    ]
    assert missing == []


def test_readme_opens_with_the_two_commands() -> None:
    head = README[:1500]
    assert "make run" in head
    assert "make test" in head


SERVICES = ("PostgreSQL at `127.0.0.1:5432`", "Redis at `127.0.0.1:6379`", "Chromium at `/usr/bin/chromium`")


def unnamed_services(text: str) -> list[str]:
    """The services, and the variables that point the tests at them, that ``text`` does not name."""
    tests = ROOT / "tests"
    variables = {
        name for path in tests.rglob("*.py") for name in re.findall(r'"(WAGATE_TEST_[A-Z_]+)"', path.read_text())
    }
    assert variables >= {"WAGATE_TEST_PG", "WAGATE_TEST_REDIS", "WAGATE_TEST_CHROMIUM"}
    return [f"`{name}" for name in sorted(variables) if f"`{name}" not in text] + [
        service for service in SERVICES if service not in text
    ]


def test_readme_names_every_service_the_tests_use() -> None:
    assert unnamed_services(README[README.index("Requirements:") : README.index("## A five-minute tour")]) == []


def test_getting_started_names_every_service_the_tests_use() -> None:
    page = (ROOT / "docs" / "getting-started.md").read_text(encoding="utf-8")
    section = page[page.index("## Running the tests\n") :]
    end = section.find("\n## ", 1)
    assert unnamed_services(section if end == -1 else section[:end]) == []


def headings(markdown: str) -> set[str]:
    """The anchors of a page's headings, as MkDocs and GitHub make them of a plain heading: lower case, words joined
    by hyphens, punctuation dropped."""
    prose = re.sub(r"^```.*?^```", "", markdown, flags=re.MULTILINE | re.DOTALL)
    titles = re.findall(r"^#{1,6} (.+?)\s*$", prose, flags=re.MULTILINE)
    return {re.sub(r"[-\s]+", "-", re.sub(r"[^\w\s-]", "", title).strip().lower()) for title in titles}


def test_the_readme_links_only_to_what_exists() -> None:
    targets = re.findall(r"\]\(([^)\s]+)\)", README)
    assert any(target.startswith("docs/") and target.endswith(".md") for target in targets)
    broken = []
    for target in targets:
        if urlsplit(target).scheme:
            continue
        path, _, anchor = target.partition("#")
        linked = ROOT / path if path else ROOT / "README.md"
        if not linked.is_file() or (anchor and anchor not in headings(linked.read_text(encoding="utf-8"))):
            broken.append(target)
    assert broken == []
