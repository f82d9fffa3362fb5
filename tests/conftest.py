"""The fixtures every test directory shares (defined in tests.support.fixtures), the check of the test tiers
(tests.support.tiers), and neonize imported once."""

from __future__ import annotations

import gc
import subprocess
import time
import warnings

import pytest

# The support package's asserts explain themselves as a test module's do.
pytest.register_assert_rewrite("tests.support")

from tests.support import zygote  # noqa: E402
from tests.support.fixtures import backend, client, gateway, pg_schema, store  # noqa: E402

__all__ = ["backend", "client", "gateway", "pg_schema", "store"]
pytest_plugins = ["tests.support.tiers"]


def pytest_unconfigure() -> None:
    zygote.stop()  # waited for, so that its children's CPU is counted where the run's is measured


# neonize's import runs `os.popen("uname -a")` and never closes it: the pipe stays with an unreaped process that
# subprocess reaps at the next Popen, warning then, in whichever test starts a process. Import it once, here, and
# let the child be reaped while that warning is expected.
with warnings.catch_warnings():
    warnings.simplefilter("ignore", ResourceWarning)
    import neonize.aioze.client  # noqa: F401

    deadline = time.monotonic() + 5
    while subprocess._active and time.monotonic() < deadline:  # type: ignore[attr-defined]
        subprocess._cleanup()  # type: ignore[attr-defined]
        time.sleep(0.01)
    gc.collect()
