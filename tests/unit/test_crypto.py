"""Sealing, associated data binding, keyring loading and key rotation."""

from __future__ import annotations

import base64
import os
import stat
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from wagate.config import Mode, Settings
from wagate.crypto.entropy import BLOCK, public_random
from wagate.crypto.envelope import new_key, open_sealed, record_aad, seal
from wagate.crypto.keyring import Keyring, WrappedKey, generate_key_spec, load_keyring, parse_keys
from wagate.crypto.tokens import hash_api_key, new_api_key
from wagate.errors import ConfigError, CryptoError, UnknownKeyError

KEY = bytes(range(32))
AAD = record_aad("ten_a", "ses_a", "session", "alice")


@given(st.binary(max_size=4096), st.text(max_size=40), st.text(max_size=40))
def test_round_trip(plaintext: bytes, namespace: str, key: str) -> None:
    aad = record_aad("ten_a", "ses_a", namespace, key)
    assert open_sealed(KEY, seal(KEY, plaintext, aad), aad) == plaintext


def test_fresh_nonce_every_seal() -> None:
    assert seal(KEY, b"same", AAD) != seal(KEY, b"same", AAD)


@pytest.mark.parametrize(
    "moved_to",
    [
        record_aad("ten_a", "ses_b", "session", "alice"),  # another session
        record_aad("ten_a", "ses_a", "prekeys", "alice"),  # another namespace
        record_aad("ten_b", "ses_a", "session", "alice"),  # another tenant
        record_aad("ten_a", "ses_a", "session", "bob"),  # another record key
        record_aad("ten_a", "ses_as", "ession", "alice"),  # the same characters split differently
    ],
)
def test_moved_record_does_not_open(moved_to: bytes) -> None:
    sealed = seal(KEY, b"ratchet state", AAD)
    with pytest.raises(CryptoError):
        open_sealed(KEY, sealed, moved_to)


@given(st.integers(min_value=0))
def test_any_flipped_bit_fails(position: int) -> None:
    sealed = bytearray(seal(KEY, b"ratchet state", AAD))
    bit = position % (len(sealed) * 8)
    sealed[bit // 8] ^= 1 << (bit % 8)
    with pytest.raises(CryptoError):
        open_sealed(KEY, bytes(sealed), AAD)


def test_wrong_key_fails() -> None:
    with pytest.raises(CryptoError):
        open_sealed(new_key(), seal(KEY, b"x", AAD), AAD)


def test_keyring_wraps_under_active_and_unwraps_any() -> None:
    old, new = os.urandom(32), os.urandom(32)
    data_key = new_key()
    wrapped = Keyring({"old": old}, "old").wrap(data_key, "ten", "ses")
    both = Keyring({"old": old, "new": new}, "new")
    rewrapped = both.rewrap(wrapped, "ten", "ses")
    assert rewrapped.kek_id == "new"
    assert Keyring({"new": new}, "new").unwrap(rewrapped, "ten", "ses") == data_key
    with pytest.raises(UnknownKeyError):
        Keyring({"new": new}, "new").unwrap(wrapped, "ten", "ses")
    with pytest.raises(CryptoError):  # a wrapped key moved to another session does not open
        both.unwrap(rewrapped, "ten", "other")
    with pytest.raises(CryptoError):  # nor under a relabelled KEK id
        both.unwrap(WrappedKey("old", rewrapped.blob), "ten", "ses")


def test_parse_keys_and_errors_never_show_key_material() -> None:
    spec = generate_key_spec("a") + "," + generate_key_spec("b")
    assert sorted(parse_keys(spec)) == ["a", "b"]
    secret = base64.b64encode(b"short").decode()
    for bad in (f"a:{secret}", "nocolon", "a:!!!", f"{generate_key_spec('a')},{generate_key_spec('a')}"):
        with pytest.raises(ConfigError) as err:
            parse_keys(bad)
        assert secret not in str(err.value)
        assert "!!!" not in str(err.value)


def test_production_without_keys_refuses_with_instructions(tmp_path: Path) -> None:
    settings = Settings.model_validate({"env": Mode.PRODUCTION, "data_dir": tmp_path})
    with pytest.raises(ConfigError, match="wagate keys generate"):
        load_keyring(settings)
    assert not (tmp_path / "keys").exists()


def test_several_keys_need_an_active_one(tmp_path: Path) -> None:
    spec = generate_key_spec("a") + "," + generate_key_spec("b")
    with pytest.raises(ConfigError, match="WAGATE_ACTIVE_KEY"):
        load_keyring(Settings.model_validate({"keys": spec, "data_dir": tmp_path}))
    assert (
        load_keyring(Settings.model_validate({"keys": spec, "active_key": "b", "data_dir": tmp_path})).active_id == "b"
    )


def test_development_key_is_generated_once_with_0600(tmp_path: Path) -> None:
    settings = Settings.model_validate({"data_dir": tmp_path / "data"})
    first = load_keyring(settings)
    path = tmp_path / "data" / "keys"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    data_key = new_key()
    wrapped = first.wrap(data_key, "t", "s")
    assert load_keyring(settings).unwrap(wrapped, "t", "s") == data_key  # the same key on the next start


def test_api_keys_are_random_and_hashed() -> None:
    a, b = new_api_key(), new_api_key()
    assert a != b
    assert a.startswith("wag_")
    assert len(a) > 40
    assert hash_api_key(a) != a
    assert len(hash_api_key(a)) == 64


def test_associated_data_keeps_its_encoding() -> None:
    """Every sealed value at rest was bound to this exact encoding: a change would make them all fail to open."""
    assert record_aad("t", "s", "n", "k").hex() == (
        "77616761746501000000067265636f726400000001740000000173000000016e000000016b"
    )
    assert record_aad("t", "s", "n", "k") == record_aad("t", "s", "n", "k")  # the second one from the kept prefix
    assert record_aad("t", "s", "n", "é") != record_aad("t", "s", "n", "e")


def test_public_random_hands_out_each_byte_once_across_blocks() -> None:
    taken = [public_random(12) for _ in range(3 * BLOCK // 12)]
    assert {len(part) for part in taken} == {12}
    assert len(set(taken)) == len(taken)  # 96-bit values: a repeat would mean a byte range handed out twice
    assert len(public_random(BLOCK)) == BLOCK  # larger than a share of the block: straight from the OS


@pytest.mark.e2e
def test_a_forked_child_never_hands_out_the_parents_bytes() -> None:
    public_random(12)  # the parent holds a block with bytes left in it
    read, write = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - the child's side, reported through the pipe
        try:
            os.write(write, b"".join(public_random(12) for _ in range(32)))
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read, "rb") as pipe:
        from_child = pipe.read()
    os.waitpid(child, 0)
    from_parent = b"".join(public_random(12) for _ in range(32))
    assert len(from_child) == len(from_parent) == 384
    assert {from_child[i : i + 12] for i in range(0, 384, 12)}.isdisjoint(
        from_parent[i : i + 12] for i in range(0, 384, 12)
    )
