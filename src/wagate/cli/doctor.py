"""``wagate doctor``: what a start would trip over, checked without starting anything or changing anything.

Each check prints one line, ``ok``, ``warn`` or ``FAIL``, with what was found and, when something is to be done,
what; the command exits 1 when any check failed. It reads the settings, the data directory, the keys, the database
(without applying a migration or creating a file) and the engines' prerequisites. No secret is printed.
"""

from __future__ import annotations

import asyncio
import importlib
import os
import stat
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

import typer
from pydantic import ValidationError

from wagate.cli.base import app
from wagate.config import Settings, describe_invalid
from wagate.crypto.keyring import DEV_KEY_FILE, Keyring, load_keyring
from wagate.errors import ConfigError, StoreUnavailable

__all__ = [
    "Check",
    "Outcome",
    "check_data_dir",
    "check_database",
    "check_engines",
    "check_keys",
    "check_redis",
    "diagnose",
    "doctor",
]


class Outcome(StrEnum):
    OK = "ok"
    WARN = "warn"
    FAIL = "FAIL"


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    outcome: Outcome
    found: str
    todo: str | None = None

    def line(self) -> str:
        text = f"{self.outcome.value:<5} {self.name:<10} {self.found}"
        return text + (f"; {self.todo}" if self.todo else "")


def _ok(name: str, found: str) -> Check:
    return Check(name, Outcome.OK, found)


def _fail(name: str, found: str, todo: str) -> Check:
    return Check(name, Outcome.FAIL, found, todo)


def check_data_dir(path: Path) -> list[Check]:
    """The data directory is its owner's alone (0700), and so is every file in it (0600)."""
    if not path.exists():
        return [_ok("data-dir", f"{path} does not exist yet; the first start makes it (0700)")]
    if not path.is_dir():
        return [_fail("data-dir", f"{path} is not a directory", "point WAGATE_DATA_DIR at a directory")]
    checks = []
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        checks.append(_fail("data-dir", f"{path} is mode {mode:04o}", f"chmod 700 {path} (a start does it too)"))
    else:
        checks.append(_ok("data-dir", f"{path} is mode {mode:04o}"))
    exposed = sorted(
        f"{entry.name} ({stat.S_IMODE(entry.stat().st_mode):04o})"
        for entry in path.iterdir()
        if entry.is_file() and stat.S_IMODE(entry.stat().st_mode) & 0o077
    )
    if exposed:
        checks.append(_fail("files", f"readable by others: {', '.join(exposed)}", f"chmod 600 those files in {path}"))
    return checks


def check_keys(settings: Settings) -> tuple[Check, Keyring | None]:
    """The keys load, and the active one seals and opens."""
    if settings.keys is None and not settings.production and not (settings.data_dir / DEV_KEY_FILE).exists():
        found = f"none yet: the first start generates a development key in {settings.data_dir / DEV_KEY_FILE}"
        return Check("keys", Outcome.WARN, found, "set WAGATE_KEYS for production (wagate keys generate)"), None
    try:
        keyring = load_keyring(settings)
    except ConfigError as exc:
        return _fail("keys", str(exc), "fix WAGATE_KEYS / WAGATE_ACTIVE_KEY"), None
    probe = os.urandom(32)
    try:
        usable = keyring.unwrap(keyring.wrap(probe, "doctor", "doctor"), "doctor", "doctor") == probe
    except Exception as exc:  # whatever the key does wrong, it is reported, not raised
        return _fail("keys", f"the active key {keyring.active_id} cannot seal: {exc}", "make a new key"), None
    if not usable:
        return _fail("keys", f"the active key {keyring.active_id} does not open what it sealed", "make a new key"), None
    where = "WAGATE_KEYS" if settings.keys is not None else str(settings.data_dir / DEV_KEY_FILE)
    return _ok("keys", f"{len(keyring.ids)} key(s) from {where}, {keyring.active_id} active, seals and opens"), keyring


async def check_database(settings: Settings, keyring: Keyring | None) -> tuple[list[Check], frozenset[str]]:
    """The database answers, its migrations, and the keys that sealed what it holds are all at hand; and the
    engines its sessions use."""
    from wagate.store.inspect import inspect_store

    try:
        state = await inspect_store(settings.resolved_database_url, schema_name=settings.database_schema)
    except ConfigError as exc:
        return [_fail("database", str(exc), "fix WAGATE_DATABASE_URL")], frozenset()
    except StoreUnavailable as exc:
        return [_fail("database", str(exc), "check WAGATE_DATABASE_URL and that the database runs")], frozenset()
    if state is None:
        return [_ok("database", "no SQLite file yet; the first start makes it")], frozenset()
    checks = []
    if state.version > state.latest:
        found = f"at migration {state.version}, newer than this wagate ({state.latest})"
        checks.append(_fail("database", found, "run the wagate version that migrated it, or a newer one"))
    elif state.version < state.latest:
        found = f"reachable, at migration {state.version} of {state.latest}"
        checks.append(Check("database", Outcome.WARN, found, "the next wagate serve applies the rest"))
    else:
        checks.append(_ok("database", f"reachable, migrated ({state.version})"))
    if keyring is not None:
        missing = sorted(state.kek_ids - set(keyring.ids))
        if missing:
            found = f"data sealed under key(s) {', '.join(missing)}, which the keys lack"
            checks.append(_fail("sealed", found, "add those keys back to WAGATE_KEYS (wagate keys rotate moves off)"))
        elif state.kek_ids:
            checks.append(_ok("sealed", f"every key that sealed stored data is at hand ({len(state.kek_ids)})"))
    return checks, state.engines


def check_engines(settings: Settings, in_use: frozenset[str]) -> list[Check]:
    checks = []
    wanted = {settings.default_engine, *in_use}
    if "neonize" in wanted:
        try:
            importlib.import_module("neonize")
            checks.append(_ok("neonize", "importable"))
        except Exception as exc:  # a missing native library raises OSError, a broken install anything
            found = f"cannot be imported ({type(exc).__name__}: {exc})"
            checks.append(_fail("neonize", found, "pip install --force-reinstall 'neonize>=0.5.2,<0.6'"))
    if "sim" in wanted and not settings.demo:
        if settings.sim_url:
            checks.append(_ok("sim", f"simulator at {settings.sim_url}"))
        else:
            checks.append(_fail("sim", "the sim engine is used but WAGATE_SIM_URL is unset", "set it, or use --demo"))
    return checks


async def check_redis(settings: Settings) -> list[Check]:
    """Only when it is configured: its client is installed, and it answers."""
    from wagate.net.redis import redis_status, require_redis_client

    if settings.redis_url is None:
        return []
    try:
        require_redis_client(settings)
    except ConfigError:
        found = "WAGATE_REDIS_URL is set but the Redis client is not installed"
        return [_fail("redis", found, "pip install 'wagate[redis]', or unset WAGATE_REDIS_URL")]
    status = await redis_status(settings)
    if status["reachable"]:
        return [_ok("redis", f"answers in {status['latency_ms']} ms")]
    return [Check("redis", Outcome.WARN, f"does not answer ({status['error']})", "only the server status uses it")]


def diagnose() -> list[Check]:
    try:
        settings = Settings()
    except ValidationError as exc:
        return [_fail("settings", describe_invalid(exc), "fix those environment variables (or .env)")]
    mode = "production" if settings.production else "development"
    checks = [_ok("settings", f"valid ({mode})")]
    checks += check_data_dir(settings.data_dir)
    key_check, keyring = check_keys(settings)
    checks.append(key_check)
    database, engines = asyncio.run(check_database(settings, keyring))
    checks += database
    checks += check_engines(settings, engines)
    checks += asyncio.run(check_redis(settings))
    return checks


@app.command()
def doctor() -> None:
    """Check the settings, the data directory, the keys, the database and the engines; say what to do about each.
    Changes nothing; exits 1 when a check fails."""
    checks = diagnose()
    for check in checks:
        typer.echo(check.line())
    failed = [check.name for check in checks if check.outcome is Outcome.FAIL]
    if failed:
        typer.echo(f"{len(failed)} check(s) failed: {', '.join(failed)}", err=True)
        raise typer.Exit(code=1)
