"""Text from the code (descriptions of settings, of the API) written into generated Markdown tables.

The descriptions are plain text that may hold inline code in backticks: the code stays as it is, and everything
else is escaped so that it reads as written (``'*'`` is an asterisk, not emphasis; ``|`` does not end a table cell;
``<id>`` is text, not an HTML tag).
"""

from __future__ import annotations

import html
import re

from mkdocs.exceptions import PluginError

_CODE = re.compile(r"(`+)(.+?)\1", re.DOTALL)
_ESCAPED = re.compile(r"([\\*_\[\]|#])")


def _plain(text: str) -> str:
    return _ESCAPED.sub(r"\\\1", html.escape(text, quote=False))


def inline(text: str) -> str:
    """``text`` as one line of Markdown: code spans kept, the rest escaped, line breaks made spaces."""
    out: list[str] = []
    position = 0
    for span in _CODE.finditer(text):
        out.append(_plain(text[position : span.start()]))
        out.append(span.group(0))
        position = span.end()
    out.append(_plain(text[position:]))
    return " ".join("".join(out).split())


def code(text: str) -> str:
    """``text`` as an inline code span, fenced by more backticks than it holds in a row."""
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def replace_marker(markdown: str, marker: str, generated: str, page: str) -> str:
    """The page's Markdown with its marker line replaced; a page without it fails the build."""
    if markdown.count(marker) != 1:
        raise PluginError(f"{page} must hold the line {marker!r} exactly once: the generated part goes there")
    return markdown.replace(marker, generated)
