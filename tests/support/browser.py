"""The browser the dashboard and docs tests drive: Debian's Chromium (Playwright never downloads one here)."""

from __future__ import annotations

import os
import shutil

import pytest

from tests.support.services import REQUIRE_SERVICES

CHROMIUM = os.environ.get("WAGATE_TEST_CHROMIUM", "/usr/bin/chromium")


def require_chromium() -> None:
    if shutil.which(CHROMIUM) is None:
        problem = f"no Chromium at {CHROMIUM} (apt-get install chromium)"
        if REQUIRE_SERVICES:
            pytest.fail(f"{problem}; WAGATE_REQUIRE_SERVICES=1 forbids skipping")
        pytest.skip(problem)
