"""The docs site: it builds strict, shows only what it carries itself, and cannot drift from the code.

The site is built once here, as ``make docs`` builds it (``mkdocs.yml``, strict), into a temporary directory.
"""

from __future__ import annotations

import ast
import asyncio
import json
import re
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from mkdocs.commands.build import build
from mkdocs.config import load_config

from tests.support.builders import make_settings
from wagate.api.app import create_app
from wagate.config import Settings, env_name
from wagate.gateway import Gateway
from wagate.runtime.node import Node

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
PACKAGE = ROOT / "src" / "wagate"

# Attributes through which a page loads something as it renders (a hyperlink, <a href>, loads nothing until clicked).
LOADING = {"src", "poster", "data", "background"}
LOADING_HREF = {"link", "image", "use"}
CSS_URL = re.compile(r"""(?:url\(\s*['"]?|@import\s+['"])([^'")\s]+)""")


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("site")
    build(load_config(str(ROOT / "mkdocs.yml"), site_dir=str(out), strict=True))
    return out


class Page(HTMLParser):
    """What a built page loads, the classes it uses, and the text of its tables' rows and its headings."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.loads: list[str] = []
        self.classes: set[str] = set()
        self.rows: list[list[str]] = []
        self.headings: list[str] = []
        self._cell: list[str] | None = None
        self._heading: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if value is None:
                continue
            if name == "srcset":
                self.loads += [part.split()[0] for part in value.split(",") if part.strip()]
            elif name in LOADING or (name == "href" and tag in LOADING_HREF):
                self.loads.append(value)
            elif name == "style":
                self.loads += CSS_URL.findall(value)
            elif name == "class":
                self.classes.update(value.split())
        if tag == "tr":
            self.rows.append([])
        elif tag in ("td", "th"):
            self._cell = []
        elif tag in ("h2", "h3"):
            self._heading = []

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._cell is not None:
            self.rows[-1].append(" ".join("".join(self._cell).split()))
            self._cell = None
        elif tag in ("h2", "h3") and self._heading is not None:
            self.headings.append("".join(self._heading).replace("¶", "").strip())
            self._heading = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)
        if self._heading is not None:
            self._heading.append(data)


def parse(path: Path) -> Page:
    page = Page()
    page.feed(path.read_text(encoding="utf-8"))
    return page


def external(url: str) -> bool:
    parts = urlsplit(url)
    return bool(parts.scheme and parts.scheme not in ("data", "blob")) or url.startswith("//")


def test_the_site_loads_nothing_from_another_host(site: Path) -> None:
    pages = sorted(site.rglob("*.html"))
    assert len(pages) >= 12
    found = [(str(p.relative_to(site)), url) for p in pages for url in parse(p).loads if external(url)]
    found += [
        (str(css.relative_to(site)), url)
        for css in site.rglob("*.css")
        for url in CSS_URL.findall(css.read_text(encoding="utf-8"))
        if external(url)
    ]
    assert found == []
    # Material draws a Mermaid diagram with a script it fetches from a CDN: no page may hold one.
    assert [p.name for p in pages if "mermaid" in parse(p).classes] == []


def test_the_configuration_page_shows_every_setting_as_the_code_has_it(site: Path) -> None:
    rows = {row[0]: row for row in parse(site / "configuration.html").rows if row and row[0].startswith("WAGATE_")}
    fields = Settings.model_fields
    assert sorted(rows) == sorted(env_name(name) for name in fields)
    for name, field in fields.items():
        assert field.description is not None
        assert " ".join(field.description.split()) in rows[env_name(name)][3], name
    assert rows["WAGATE_PORT"][1:3] == ["integer, ≥ 0, ≤ 65535", "8080"]
    assert rows["WAGATE_WEBHOOK_SENDER"][1:3] == ["one of process, inline", "process"]
    assert rows["WAGATE_ADMIN_KEY"][1:3] == ["secret string", "none"]
    assert rows["WAGATE_DATA_DIR"][1:3] == ["path", "./data"]
    assert rows["WAGATE_WORKER_ID"][2] == "computed at start"
    assert rows["WAGATE_HOST"][3].endswith("(wagate serve --host)")


@pytest.fixture(scope="module")
def document(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    settings = make_settings(tmp_path_factory.mktemp("openapi"))

    async def describe() -> dict[str, Any]:
        gateway = await Gateway.open(settings)
        try:
            return create_app(Node(gateway, supervise=False)).openapi()
        finally:
            await gateway.close()

    return asyncio.run(describe())


def test_the_api_reference_is_the_applications_document(site: Path, document: dict[str, Any]) -> None:
    assert json.loads((site / "openapi.json").read_text(encoding="utf-8")) == document
    headings = parse(site / "api.html").headings
    operations = [f"{method.upper()} {path}" for path, ops in document["paths"].items() for method in ops]
    assert [h for h in headings if h.split(" ")[0] in ("GET", "POST", "PUT", "PATCH", "DELETE")] == operations
    schemas = document["components"]["schemas"]
    assert headings[-len(schemas) :] == sorted(schemas)


def code_spans(markdown: str) -> list[str]:
    prose = re.sub(r"^```.*?^```", "", markdown, flags=re.MULTILINE | re.DOTALL)
    return [match.group(2).strip() for match in re.finditer(r"(`+)(.+?)\1", prose, flags=re.DOTALL)]


def module_path(dotted: str) -> Path | None:
    """Where the module ``wagate.x.y`` lives under src/, or None when there is none."""
    base = PACKAGE.parent.joinpath(*dotted.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def defined(module: Path) -> set[str]:
    """The names a module defines at its top level (classes, functions, assignments)."""
    names: set[str] = set()
    for node in ast.parse(module.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            names.add(node.name)
        elif isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names.update(target.id for target in targets if isinstance(target, ast.Name))
    return names


def exists(dotted: str) -> bool:
    """``wagate.x.y`` is a module or package, or a name defined at the top of one (``wagate.store.open_store``)."""
    if module_path(dotted) is not None:
        return True
    owner, _, name = dotted.rpartition(".")
    module = module_path(owner)
    return module is not None and name in defined(module)


def dotted_names(markdown: str) -> set[str]:
    return {span for span in code_spans(markdown) if re.fullmatch(r"wagate(?:\.[A-Za-z_][A-Za-z0-9_]*)+", span)}


def test_every_module_the_pages_name_exists() -> None:
    missing = {
        (page.name, name)
        for page in DOCS.glob("*.md")
        for name in dotted_names(page.read_text(encoding="utf-8"))
        if not exists(name)
    }
    assert missing == set()


def test_the_architecture_page_names_exactly_the_tree() -> None:
    text = (DOCS / "architecture.md").read_text(encoding="utf-8")
    # The diagram names paths relative to src/wagate/: packages as `name/`, modules as `name.py`.
    diagrams = re.findall(r"^```text\n(.*?)^```", text, flags=re.MULTILINE | re.DOTALL)
    assert diagrams, "the architecture page draws the parts in a ```text block"
    path = re.compile(r"(?<![\w./-])((?:[a-z_][a-z0-9_]*/)+(?:[a-z_][a-z0-9_]*\.py)?|[a-z_][a-z0-9_]*\.py)")
    drawn = {name for diagram in diagrams for name in path.findall(diagram)}
    assert drawn, "the diagram names no package or module"
    assert sorted(path for path in drawn if not (PACKAGE / path).exists()) == []
    # Every package, and every module at the top of the tree, has its place in the map.
    named = dotted_names(text)
    packages = {
        "wagate." + ".".join(init.parent.relative_to(PACKAGE).parts)
        for init in PACKAGE.rglob("__init__.py")
        if init.parent != PACKAGE
    }
    top = {f"wagate.{module.stem}" for module in PACKAGE.glob("*.py") if module.stem != "__init__"}
    assert sorted((packages | top) - named) == []


def tour(markdown: str) -> list[str]:
    """The shell blocks of the tour's section: the commands a reader pastes."""
    section = markdown[markdown.index("## A five-minute tour\n") :]
    section = section[: section.find("\n## ", 1)] if "\n## " in section[1:] else section
    return re.findall(r"^```sh\n(.*?)^```$", section, re.MULTILINE | re.DOTALL)


def test_the_getting_started_tour_is_the_one_the_readme_runs() -> None:
    site_tour = tour((DOCS / "getting-started.md").read_text(encoding="utf-8"))
    assert site_tour
    assert site_tour == tour((ROOT / "README.md").read_text(encoding="utf-8"))
