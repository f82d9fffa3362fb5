"""Sealed auth records and wrapped data keys in SQL.

Every record write is fenced: inside its transaction it touches the session's lease row with
``UPDATE ... WHERE owner = :owner AND epoch = :epoch``. That matches no row once another owner has taken the lease,
and on PostgreSQL the row lock it takes makes a concurrent take-over wait for the write to commit (or the write
wait and then fail), so no stale owner's write can land after a take-over.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, TypeVar

from sqlalchemy import (
    BigInteger,
    ClauseElement,
    Connection,
    Double,
    LargeBinary,
    Text,
    bindparam,
    delete,
    func,
    insert,
    literal,
    select,
    tuple_,
    update,
)
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from wagate.clock import Clock
from wagate.crypto.keyring import WrappedKey
from wagate.domain.auth import AuthWrite, SealedRecord
from wagate.errors import LeaseLost
from wagate.ids import SessionId, TenantId
from wagate.store.contracts.auth import AuthRecordStore
from wagate.store.sql import schema
from wagate.store.sql.db import Database
from wagate.store.sql.prepared import InList, InsertMany, Prepared, Tx, rows_in

__all__ = ["DK", "L", "R", "SqlAuthRecordStore", "check_fence"]

R = schema.auth_records
DK = schema.session_keys
L = schema.session_leases
_CHUNK = 500
_T = TypeVar("_T")


def _chunks(items: Sequence[_T], size: int = _CHUNK) -> Iterator[Sequence[_T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _record(row: Any) -> SealedRecord:
    return SealedRecord(row.namespace, row.key, row.version, bytes(row.value))


async def check_fence(conn: AsyncConnection, session_id: SessionId, owner: str, epoch: int) -> None:
    """Raise ``LeaseLost`` unless (owner, epoch) still holds the session's lease; lock the lease row meanwhile."""
    result = await conn.execute(
        update(L).where(L.c.session_id == session_id, L.c.owner == owner, L.c.epoch == epoch).values(epoch=L.c.epoch)
    )
    if result.rowcount != 1:
        raise LeaseLost(f"session {session_id}: lease epoch {epoch} is no longer held")


_LEASE_KEY = (L.c.session_id, L.c.owner, L.c.epoch)
_FENCE = InList(lambda _, wanted: update(L).where(rows_in(_LEASE_KEY, wanted)).values(epoch=L.c.epoch), width=3)
_HOLDERS = InList(lambda _, wanted: select(*_LEASE_KEY).where(rows_in(_LEASE_KEY, wanted)), width=3)
_UPSERT = InsertMany(
    R,
    ("session_id", "tenant_id", "namespace", "key", "version", "value", "updated_at"),
    conflict=lambda insert: insert.on_conflict_do_update(
        index_elements=["session_id", "namespace", "key"],
        set_={"value": insert.excluded.value, "updated_at": insert.excluded.updated_at, "version": R.c.version + 1},
    ),
)


_COLUMNS: tuple[tuple[str, Any], ...] = (
    ("session_id", Text),
    ("tenant_id", Text),
    ("namespace", Text),
    ("key", Text),
    ("value", LargeBinary),
    ("updated_at", Double),
)


def _unnest_upsert(_: Dialect) -> ClauseElement:
    """PostgreSQL: the upsert of any number of records in one statement, one array per column, unnested."""
    arrays = func.unnest(*(bindparam(name, type_=postgresql.ARRAY(kind)) for name, kind in _COLUMNS))
    rows = arrays.table_valued(*(name for name, _ in _COLUMNS)).render_derived(name="r")
    statement = postgresql.insert(R).from_select(
        ["session_id", "tenant_id", "namespace", "key", "version", "value", "updated_at"],
        select(
            *(rows.c[name] for name in ("session_id", "tenant_id", "namespace", "key")),
            literal(1, BigInteger),
            rows.c.value,
            rows.c.updated_at,
        ),
    )
    return statement.on_conflict_do_update(
        index_elements=["session_id", "namespace", "key"],
        set_={
            "value": statement.excluded.value,
            "updated_at": statement.excluded.updated_at,
            "version": R.c.version + 1,
        },
    )


_UNNEST = Prepared(_unnest_upsert, [name for name, _ in _COLUMNS])


def _fence_many(tx: Tx, writes: Sequence[AuthWrite]) -> set[tuple[str, str, int]]:
    """The (session, owner, epoch) triples among ``writes`` that still hold their lease, lease rows locked (on
    PostgreSQL; SQLite's writer is alone anyway). Usually all of them: the update says so by its count, and only
    otherwise are the holders read."""
    wanted = sorted({(w.session_id, w.owner, w.epoch) for w in writes})
    if _FENCE.run(tx, wanted) == len(wanted):
        return set(wanted)
    return {(str(s), str(o), int(e)) for s, o, e in _HOLDERS.fetch(tx, wanted)}


def _upsert(tx: Tx, rows: Sequence[tuple[Any, ...]]) -> None:
    """One statement for many records; of a record written twice, the later value (one statement must not update
    a row twice)."""
    latest = {(row[0], row[2], row[3]): row for row in rows}
    if tx.dialect.name == "postgresql" and latest:
        # A statement per row count costs a round trip each (a batch of 39 records took four): one, whatever the count.
        session_ids, tenant_ids, namespaces, keys, _, values, times = zip(*latest.values(), strict=True)
        tx.run(_UNNEST, [list(session_ids), list(tenant_ids), list(namespaces), list(keys), list(values), list(times)])
        return
    _UPSERT.run(tx, list(latest.values()))


class SqlAuthRecordStore(AuthRecordStore):
    def __init__(self, db: Database, clock: Clock) -> None:
        self._db = db
        self._clock = clock
        self._upsert = db.upsert(
            R,
            keys=("session_id", "namespace", "key"),
            update=("value", "updated_at"),
            extra={"version": R.c.version + 1},
        )

    async def get_data_key(self, tenant_id: TenantId, session_id: SessionId) -> WrappedKey | None:
        async with self._db.read() as conn:
            row = (
                await conn.execute(select(DK).where(DK.c.session_id == session_id, DK.c.tenant_id == tenant_id))
            ).first()
        return WrappedKey(row.kek_id, bytes(row.wrapped)) if row else None

    async def put_data_key_if_absent(
        self, tenant_id: TenantId, session_id: SessionId, wrapped: WrappedKey
    ) -> WrappedKey:
        now = self._clock()
        try:
            async with self._db.write() as conn:
                existing = (await conn.execute(select(DK).where(DK.c.session_id == session_id))).first()
                if existing is not None:
                    return WrappedKey(existing.kek_id, bytes(existing.wrapped))
                await conn.execute(
                    insert(DK).values(
                        session_id=session_id,
                        tenant_id=tenant_id,
                        kek_id=wrapped.kek_id,
                        wrapped=wrapped.blob,
                        created_at=now,
                        updated_at=now,
                    )
                )
        except IntegrityError:
            stored = await self.get_data_key(tenant_id, session_id)
            if stored is None:
                raise
            return stored
        return wrapped

    async def replace_data_key(
        self, tenant_id: TenantId, session_id: SessionId, old: WrappedKey, new: WrappedKey
    ) -> bool:
        async with self._db.write() as conn:
            result = await conn.execute(
                update(DK)
                .where(
                    DK.c.session_id == session_id,
                    DK.c.tenant_id == tenant_id,
                    DK.c.kek_id == old.kek_id,
                    DK.c.wrapped == old.blob,
                )
                .values(kek_id=new.kek_id, wrapped=new.blob, updated_at=self._clock())
            )
        return bool(result.rowcount)

    async def rewrap_all_data_keys_all_tenants(
        self, rewrap: Callable[[TenantId, SessionId, WrappedKey], WrappedKey | None]
    ) -> int:
        async with self._db.read() as conn:
            rows = (await conn.execute(select(DK).order_by(DK.c.session_id))).all()
        changed = 0
        for chunk in _chunks(rows):
            async with self._db.write() as conn:
                for row in chunk:
                    old = WrappedKey(row.kek_id, bytes(row.wrapped))
                    new = rewrap(TenantId(row.tenant_id), SessionId(row.session_id), old)
                    if new is None:
                        continue
                    # Only replace what we read: a key rewrapped meanwhile by another run is left alone.
                    result = await conn.execute(
                        update(DK)
                        .where(DK.c.session_id == row.session_id, DK.c.kek_id == old.kek_id, DK.c.wrapped == old.blob)
                        .values(kek_id=new.kek_id, wrapped=new.blob, updated_at=self._clock())
                    )
                    changed += result.rowcount
        return changed

    async def read(
        self, tenant_id: TenantId, session_id: SessionId, namespace: str, keys: Sequence[str]
    ) -> dict[str, SealedRecord]:
        found: dict[str, SealedRecord] = {}
        async with self._db.read() as conn:
            for chunk in _chunks(list(keys)):
                query = select(R).where(
                    R.c.session_id == session_id,
                    R.c.tenant_id == tenant_id,
                    R.c.namespace == namespace,
                    R.c.key.in_(chunk),
                )
                for row in await conn.execute(query):
                    found[row.key] = _record(row)
        return found

    async def read_all(self, tenant_id: TenantId, session_id: SessionId) -> list[SealedRecord]:
        query = (
            select(R).where(R.c.session_id == session_id, R.c.tenant_id == tenant_id).order_by(R.c.namespace, R.c.key)
        )
        async with self._db.read() as conn:
            return [_record(row) for row in await conn.execute(query)]

    async def bulk_load(
        self, session_ids: Sequence[SessionId], namespace: str
    ) -> tuple[dict[SessionId, WrappedKey], dict[SessionId, list[SealedRecord]]]:
        keys: dict[SessionId, WrappedKey] = {}
        records: dict[SessionId, list[SealedRecord]] = {}
        async with self._db.read() as conn:
            for chunk in _chunks(list(session_ids)):
                for row in await conn.execute(select(DK).where(DK.c.session_id.in_(chunk))):
                    keys[SessionId(row.session_id)] = WrappedKey(row.kek_id, bytes(row.wrapped))
                query = select(R).where(R.c.session_id.in_(chunk), R.c.namespace == namespace)
                for row in await conn.execute(query):
                    records.setdefault(SessionId(row.session_id), []).append(_record(row))
        return keys, records

    async def write(
        self,
        tenant_id: TenantId,
        session_id: SessionId,
        *,
        owner: str,
        epoch: int,
        upserts: Mapping[tuple[str, str], bytes],
        deletes: Sequence[tuple[str, str]] = (),
        replace_all: bool = False,
    ) -> None:
        write = AuthWrite(tenant_id, session_id, owner, epoch, upserts, deletes, replace_all)
        async with self._db.write() as conn:
            await check_fence(conn, session_id, owner, epoch)
            await conn.run_sync(self._apply, write)

    async def write_many(self, writes: Sequence[AuthWrite]) -> list[LeaseLost | None]:
        """One transaction: the fences in one statement, then the writes in order, consecutive upserts together."""
        return await self._db.run_write(lambda conn: self.apply_many(conn, writes))

    def apply_many(self, conn: Connection, writes: Sequence[AuthWrite]) -> list[LeaseLost | None]:
        """``write_many`` inside the caller's transaction (synchronous: see ``Database.run_write``)."""
        results: list[LeaseLost | None] = []
        if not writes:
            return results
        tx = Tx(conn)
        held = _fence_many(tx, writes)
        now = self._clock()
        rows: list[tuple[Any, ...]] = []
        for write in writes:
            if (write.session_id, write.owner, write.epoch) not in held:  # nothing of it applied; others go on
                results.append(LeaseLost(f"session {write.session_id}: lease epoch {write.epoch} is no longer held"))
                continue
            if write.deletes or write.replace_all:
                _upsert(tx, rows)  # what came before goes first
                rows = []
                self._apply(conn, write)
            else:
                rows.extend(
                    (write.session_id, write.tenant_id, ns, key, 1, value, now)
                    for (ns, key), value in write.upserts.items()
                )
            results.append(None)
        _upsert(tx, rows)
        return results

    def _rows(self, write: AuthWrite) -> list[dict[str, Any]]:
        now = self._clock()
        return [
            {
                "session_id": write.session_id,
                "tenant_id": write.tenant_id,
                "namespace": namespace,
                "key": key,
                "version": 1,
                "value": value,
                "updated_at": now,
            }
            for (namespace, key), value in write.upserts.items()
        ]

    def _apply(self, conn: Connection, write: AuthWrite) -> None:
        rows = self._rows(write)
        mine = (R.c.session_id == write.session_id) & (R.c.tenant_id == write.tenant_id)
        if write.replace_all:
            conn.execute(delete(R).where(mine))
        for chunk in _chunks(list(write.deletes)):
            conn.execute(delete(R).where(mine, tuple_(R.c.namespace, R.c.key).in_(list(chunk))))
        if rows:
            conn.execute(self._upsert, rows)
