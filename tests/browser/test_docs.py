"""The API reference at /docs renders in a real browser that can reach nothing but the gateway."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Route, expect, sync_playwright

from tests.support.browser import CHROMIUM, require_chromium
from tests.support.builders import TEST_KEK
from tests.support.procs import Served, clean_env, serve

pytestmark = pytest.mark.e2e


@pytest.fixture
def gateway(tmp_path: Path) -> Iterator[Served]:
    require_chromium()
    served = serve(tmp_path, clean_env(WAGATE_DATA_DIR=str(tmp_path / "data"), WAGATE_KEYS=TEST_KEK))
    served.wait_healthy()
    yield served
    served.terminate()


def test_the_api_reference_renders_offline(gateway: Served) -> None:
    own = urlsplit(gateway.base_url).netloc
    elsewhere: list[str] = []

    def only_the_gateway(route: Route) -> None:
        if urlsplit(route.request.url).netloc == own:
            route.continue_()
        else:  # as without internet: nothing else answers
            elsewhere.append(route.request.url)
            route.abort()

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            page = browser.new_page()
            page.route("**/*", only_the_gateway)
            page.goto(gateway.base_url + "/docs")
            expect(page.locator(".opblock-summary-path", has_text="/api/sessions/{name}/history")).to_be_visible(
                timeout=15_000
            )
            expect(page.locator(".information-container .title")).to_contain_text("wagate")
        finally:
            browser.close()
    assert elsewhere == []
