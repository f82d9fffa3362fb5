"""``/docs`` is served whole by wagate: the page names no other host, and every file it loads is here."""

from __future__ import annotations

import re

from httpx import AsyncClient


async def test_the_docs_page_loads_nothing_from_another_host(client: AsyncClient) -> None:
    page = await client.get("/docs")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert not re.search(r"\w+://|//\w", page.text), "the page names a URL of another host"
    loaded = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert {"/docs/assets/swagger-ui-bundle.js", "/docs/assets/swagger-ui.css"} <= set(loaded)
    for path in loaded:
        asset = await client.get(path)
        assert asset.status_code == 200, path
        assert len(asset.content) > 1000, path
    assert "url: '/openapi.json'" in page.text
    assert (await client.get("/openapi.json")).json()["openapi"].startswith("3.")
    assert '"validatorUrl": null' in page.text  # Swagger UI would otherwise fetch a badge from validator.swagger.io
