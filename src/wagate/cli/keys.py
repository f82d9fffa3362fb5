"""``wagate keys`` (encryption keys) and ``wagate admin-key`` (the admin API key)."""

from __future__ import annotations

from typing import Annotated

import typer

from wagate.cli.base import fail, make_typer, open_gateway, run
from wagate.errors import ConfigError

__all__ = ["admin_app", "admin_key_new", "keys_app", "keys_generate", "keys_rotate"]

keys_app = make_typer("Encryption keys.")
admin_app = make_typer("The admin API key.")


@keys_app.command("generate")
def keys_generate(key_id: Annotated[str, typer.Option("--id", help="the new key's id")] = "k1") -> None:
    """Print a new key-encryption key as id:base64key, for WAGATE_KEYS."""
    from wagate.crypto.keyring import generate_key_spec

    try:
        typer.echo(generate_key_spec(key_id))
    except ConfigError as exc:
        fail(str(exc))


@keys_app.command("rotate")
def keys_rotate() -> None:
    """Rewrap every session's data key, and reseal webhook secrets, stored events and backups, under
    WAGATE_ACTIVE_KEY.

    Auth record ciphertexts are not rewritten (they are sealed with the session's data key)."""
    from wagate.store.vault import reseal_bundle

    async def rotate() -> tuple[int, int, int]:
        gateway = await open_gateway()
        keyring = gateway.keyring
        try:
            keys = await gateway.store.auth.rewrap_all_data_keys_all_tenants(
                lambda tenant, session, wrapped: (
                    None if wrapped.kek_id == keyring.active_id else keyring.rewrap(wrapped, tenant, session)
                )
            )
            secrets = await gateway.store.webhooks.reseal_all_tenants(keyring.active_id)
            events = await gateway.store.events.reseal_all_tenants(keyring.active_id)
            await gateway.store.backups.reseal_all_tenants(lambda bundle: reseal_bundle(keyring, bundle))
            return keys, secrets, events
        finally:
            await gateway.close()

    keys, secrets, events = run(rotate)
    typer.echo(
        f"rewrapped {keys} data key(s), resealed {secrets} webhook secret(s) and {events} event(s) under the active"
        " key; keys no longer active can be removed"
    )


@admin_app.command("new")
def admin_key_new(
    keep_others: Annotated[
        bool, typer.Option("--keep-others", help="keep the admin keys issued before (revoked otherwise)")
    ] = False,
) -> None:
    """Issue a new admin API key, printed once and stored as a hash: for when the key shown at the first start is
    lost. WAGATE_ADMIN_KEY, if set, stays valid."""
    from wagate.services.accounts import new_admin_key

    async def issue() -> tuple[str, int]:
        gateway = await open_gateway()
        try:
            issued, revoked = await new_admin_key(gateway.store, keep_others=keep_others)
            return issued.secret, revoked
        finally:
            await gateway.close()

    secret, revoked = run(issue)
    typer.echo(f"admin api key: {secret}")
    if revoked:
        typer.echo(f"revoked {revoked} admin key(s) issued before", err=True)
