"""The dashboard in a real browser (Debian's Chromium driven by Playwright) against a real gateway in demo mode."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests.support import loopback
from tests.support.browser import CHROMIUM, require_chromium
from tests.support.builders import TEST_KEK
from tests.support.procs import Served, clean_env, serve

pytestmark = pytest.mark.e2e

ADMIN = "dashboard-admin-key-0123456789abcdef"
ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts" / "dashboard"


@pytest.fixture
def gateway(tmp_path: Path) -> Iterator[Served]:
    require_chromium()
    env = clean_env(
        WAGATE_DATA_DIR=str(tmp_path / "data"),
        WAGATE_ADMIN_KEY=ADMIN,
        WAGATE_KEYS=TEST_KEK,
        WAGATE_RECONCILE_INTERVAL="1",
    )
    served = serve(tmp_path, env, "--demo")
    served.wait_healthy()
    yield served
    served.terminate()


def tenant_key(gateway: Served, name: str) -> str:
    made = loopback.post(gateway.base_url + "/api/tenants", json={"name": name}, headers={"X-Api-Key": ADMIN})
    assert made.status_code == 201, made.text
    key: str = made.json()["api_key"]
    return key


@pytest.fixture
def page(gateway: Served) -> Iterator[Page]:
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    expect.set_options(timeout=15_000)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        context = browser.new_context(viewport={"width": 1200, "height": 860})
        page = context.new_page()
        page.set_default_timeout(15_000)
        yield page
        context.close()
        browser.close()


def test_link_a_phone_and_watch_it_live(gateway: Served, page: Page) -> None:
    key = tenant_key(gateway, "acme")
    other = tenant_key(gateway, "other")
    loopback.post(gateway.base_url + "/api/sessions", json={"name": "secret-other"}, headers={"X-Api-Key": other})
    page.goto(gateway.base_url + "/")
    assert key not in page.url

    # A wrong key says so clearly.
    page.fill("#api-key", "wag_not-a-real-key")
    page.click("#sign-in-form button[type=submit]")
    expect(page.locator("#banner")).to_contain_text("not valid")
    page.screenshot(path=str(ARTIFACTS / "sign-in-error.png"))

    page.fill("#api-key", key)
    page.click("#sign-in-form button[type=submit]")
    expect(page.locator("#tenant-view")).to_be_visible()
    assert key not in page.url

    # Create a session: its QR code shows, with a countdown.
    page.fill("#new-name", "sales")
    page.click("#create-form button[type=submit]")
    expect(page.locator("#detail-status")).to_have_text("SCAN_QR_CODE")
    expect(page.locator("#qr")).to_have_attribute("src", _starts_with_png())
    expect(page.locator("#qr-countdown")).to_contain_text("This code changes in")
    page.screenshot(path=str(ARTIFACTS / "linking.png"))

    # The pairing-code alternative: a code to type on the phone.
    page.fill("#pair-phone", "+15550009")
    page.click("#pair-form button[type=submit]")
    expect(page.locator("#pair-code")).to_have_text(re.compile(r"^[A-Z0-9]{4}-[A-Z0-9]{4}$"))

    # The simulated phone scans: WORKING appears without a reload.
    page.click("#simulate-scan")
    expect(page.locator("#detail-status")).to_have_text("WORKING")
    expect(page.locator("#connected-as")).to_contain_text("Connected as +1555")
    expect(page.locator("#linking")).to_be_hidden()
    row = page.locator("#sessions tbody tr[data-name=sales]")
    expect(row.locator(".status")).to_have_text("WORKING")
    expect(row.locator("td").nth(3)).not_to_be_empty()  # last connected
    page.screenshot(path=str(ARTIFACTS / "working.png"))

    # A reload keeps the key (session storage) and never shows a QR code for a WORKING session.
    page.reload()
    expect(page.locator("#detail-status")).to_have_text("WORKING")
    expect(page.locator("#linking")).to_be_hidden()
    expect(page.locator("#connected-as")).to_be_visible()

    # Stop and start, live; the history shows the changes.
    page.click("[data-action=stop]")
    expect(page.locator("#detail-status")).to_have_text("STOPPED")
    page.click("[data-action=start]")
    expect(page.locator("#detail-status")).to_have_text("WORKING")
    expect(page.locator("#history")).to_contain_text("STARTING → WORKING")
    expect(page.locator("#history")).to_contain_text("WORKING → STOPPED")

    # Another tenant's sessions never appear.
    expect(page.locator("#sessions tbody")).not_to_contain_text("secret-other")
    names = page.locator("#sessions tbody tr").evaluate_all("rows => rows.map(r => r.dataset.name)")
    assert names == ["sales"]

    # A destructive action asks first; declining changes nothing.
    page.once("dialog", lambda dialog: dialog.dismiss())
    page.click("[data-action=delete]")
    expect(page.locator("#sessions tbody tr[data-name=sales]")).to_be_visible()
    page.set_viewport_size({"width": 390, "height": 844})
    page.screenshot(path=str(ARTIFACTS / "phone.png"), full_page=True)


def test_the_admin_sees_tenants_and_server_status(gateway: Served, page: Page) -> None:
    tenant_key(gateway, "acme")
    page.goto(gateway.base_url + "/")
    page.fill("#api-key", ADMIN)
    page.press("#api-key", "Enter")  # the keyboard alone signs in
    expect(page.locator("#admin-view")).to_be_visible()
    expect(page.locator("#tenants tbody")).to_contain_text("acme")
    expect(page.locator("#server-status")).to_contain_text("sqlite")
    page.screenshot(path=str(ARTIFACTS / "admin.png"))


def _starts_with_png() -> re.Pattern[str]:
    return re.compile(r"^data:image/png;base64,")
