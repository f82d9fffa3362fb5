"""The ``neonize`` engine: real WhatsApp, through whatsmeow (Go) as the neonize package binds it.

One connection is one neonize client, started by a Go call that runs for the session's whole life: whatsmeow logs
in, reconnects by itself after a dropped socket (reported as ``Reconnecting``), and reports what happens as protobuf
events, which :mod:`wagate.engines.neonize.mapping` turns into engine events in the order they came.

What whatsmeow keeps (keys, sessions, contacts) lives in a SQLite file per session, snapshotted into the vault
(:mod:`wagate.engines.neonize.snapshot`). What neonize gets wrong is contained here, in
:mod:`wagate.engines.neonize.ffi` and in :mod:`wagate.engines.neonize.events`: no start is attempted while WhatsApp
is unreachable (each failed one leaks a database connection in Go), calls that change Go's client maps run alone,
the loop's executor is sized for the sessions, QR codes expire by our own timer (in ``events``), and user-supplied
URLs never reach neonize (media come as bytes).

Limits, from whatsmeow's design: messages are acknowledged to WhatsApp by whatsmeow as soon as they are decrypted,
before the gateway has stored them (a crash in that instant loses them); WhatsApp's message ids are made by
whatsmeow, so a message in doubt after a crash cannot be confirmed and is sent again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from concurrent.futures import ThreadPoolExecutor

import neonize.aioze.events as neonize_events
from neonize.aioze.client import NewAClient
from neonize.utils.enum import ClientName, MediaType

from wagate.domain.content import Media
from wagate.engines.base import (
    Connection,
    ContactStateDamaged,
    DeviceStateDamaged,
    Disconnected,
    Engine,
    EngineConnectError,
    EngineContext,
    EngineUnavailable,
    OutgoingMessage,
    PairingCode,
    SendRejected,
    SentMessage,
)
from wagate.engines.neonize import mapping
from wagate.engines.neonize.events import SENT_NS, EventReader
from wagate.engines.neonize.ffi import FfiGate, reachable, size_executor
from wagate.engines.neonize.options import NeonizeOptions
from wagate.engines.neonize.snapshot import Snapshots, WhatsmeowDirectory, WhatsmeowFile
from wagate.errors import DamagedRecord, LeaseLost

__all__ = [
    "SENT_NS",
    "START_WINDOW",
    "STOP_TIMEOUT",
    "NeonizeConnection",
    "NeonizeEngine",
]

# How long a start keeps the Go library to itself: it adds the client to Go's maps within milliseconds.
START_WINDOW = 0.25
# How each kind of file is encrypted and uploaded (``mapping.media_type``); a video note uploads as a video.
_UPLOADS = {
    "image": MediaType.MediaImage,
    "video": MediaType.MediaVideo,
    "audio": MediaType.MediaAudio,
    "document": MediaType.MediaDocument,
}
STOP_TIMEOUT = 10.0

log = logging.getLogger("wagate.engine.neonize")


def _quiet_neonize() -> None:
    """neonize logs whatsmeow's chatter (phone numbers included) at INFO and configures the root logger on import;
    keep only its warnings."""
    for name in ("neonize", "whatsmeow", "Whatsmeow"):
        logging.getLogger(name).setLevel(logging.WARNING)
    # its warning about ffmpeg concerns helpers the engine does not use (it builds media messages itself)
    logging.getLogger("neonize.utils.ffmpeg").setLevel(logging.ERROR)


class NeonizeEngine(Engine):
    name = "neonize"

    def __init__(self, options: NeonizeOptions) -> None:
        _quiet_neonize()
        self.directory = options.directory
        self.files = WhatsmeowDirectory(options.directory)
        self.snapshot_interval = options.snapshot_interval
        self.threads = options.threads
        self.probe = options.probe
        self.probe_timeout = options.probe_timeout
        self.gate = FfiGate()
        self._executor: ThreadPoolExecutor | None = None
        self.starts = 0  # Go-side starts of a session
        self.failed_starts = 0  # ... that failed (each leaks one database connection inside neonize 0.5)
        self.unreachable = 0  # attempts not made because WhatsApp could not be reached

    def open(self, ctx: EngineContext) -> NeonizeConnection:
        if self._executor is None:
            self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            loop = asyncio.get_running_loop()
            self._executor = size_executor(loop, self.threads)
            neonize_events.event_global_loop = loop  # neonize dispatches every client's events to this loop
        return NeonizeConnection(self, ctx)

    async def reachable(self) -> str | None:
        if not self.probe:
            return None
        host, _, port = self.probe.rpartition(":")
        return await reachable(host, int(port), self.probe_timeout)

    async def forget(self, session_id: str) -> None:
        await self.files.forget(session_id)

    async def local_sessions(self) -> list[str]:
        return await self.files.local_sessions()

    def counters(self) -> dict[str, int]:
        return {"starts": self.starts, "failed_starts": self.failed_starts, "unreachable": self.unreachable}

    async def close(self) -> None:
        # The executor stays the loop's default until the loop ends (asyncio shuts it down then): calls still in
        # flight, and the loop's own work (name lookups), keep a place to run.
        self._executor = None


class NeonizeConnection(EventReader, Connection):
    """One neonize client: its start and stop, and what the gateway asks of it; what it reports is
    :class:`~wagate.engines.neonize.events.EventReader`'s, the snapshots' upkeep the save loop's."""

    def __init__(self, engine: NeonizeEngine, ctx: EngineContext) -> None:
        self._engine = engine
        self.file = WhatsmeowFile(engine.directory, ctx.session_id)
        super().__init__(ctx, Snapshots(self.file, ctx.auth, ctx.clock), engine.gate)
        self._task: asyncio.Task[None] | None = None  # the Go call that runs the session
        self._reader: asyncio.Task[None] | None = None
        self._saver: asyncio.Task[None] | None = None

    # lifecycle -------------------------------------------------------------------------------------------------

    async def connect(self) -> None:
        # The stored state first, network or not: what is damaged in it is dealt with before anything starts.
        try:
            linked = await self.snapshots.prepare()
        except DamagedRecord as exc:
            await self._end(DeviceStateDamaged(exc.records))  # nothing can start from it: the supervisor decides
            return
        for contact in self.snapshots.dropped:
            await self._ctx.emit(ContactStateDamaged(contact))
        unreachable = await self._engine.reachable()
        if unreachable is not None:
            self._engine.unreachable += 1
            raise EngineConnectError(unreachable)
        self._registering = not linked
        props = mapping.device_props(self._ctx.config)
        client = NewAClient(self.file.dsn(), props=props, uuid=str(self._ctx.session_id))
        self._subscribe(client)
        self._client = client
        self._ready = asyncio.get_running_loop().create_future()
        self._reader = asyncio.create_task(self._read(), name=f"neonize-read-{self._ctx.session_id}")
        try:
            async with self._engine.gate.exclusive():
                self._engine.starts += 1
                self._task = await client.connect(mapping.proxy_settings(self._ctx.proxy))
                self._task.add_done_callback(self._on_task_done)
                await self._start_window()
            await asyncio.shield(self._ready)
        except EngineConnectError:
            self._engine.failed_starts += 1
            await self._shutdown()
            raise
        except BaseException:  # cancelled (a stop, the connect timeout): the Go side must not run on
            await self._shutdown()
            raise
        self._saver = asyncio.create_task(self._save_periodically(), name=f"neonize-save-{self._ctx.session_id}")

    async def _start_window(self) -> None:
        """Hold the start until Go has registered the client: its first sign of life, its end, or a short while."""
        assert self._task is not None
        assert self._ready is not None
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(START_WINDOW):
                await asyncio.wait({self._task, self._ready}, return_when=asyncio.FIRST_COMPLETED)

    async def disconnect(self) -> None:
        """Stop the client, then keep the latest state in the vault (a graceful stop)."""
        already = self._closing
        self._closing = True
        await self._shutdown()
        if not already and not self._registering and self._client is not None:
            try:
                await self.snapshots.take(force=True)
            except LeaseLost:
                log.warning("session %s: lease lost; the final snapshot was not kept", self._ctx.session_id)
            except Exception:
                log.exception("session %s: the final snapshot failed", self._ctx.session_id)

    async def _shutdown(self) -> None:
        self._closing = True
        self._cancel_qr_timer()
        for task in (self._saver, self._reader):
            if task is not None and task is not asyncio.current_task():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        if self._task is not None and not self._task.done():
            async with self._engine.gate.exclusive():
                await self._client.stop()
            with contextlib.suppress(TimeoutError, asyncio.CancelledError, Exception):
                await asyncio.wait_for(asyncio.shield(self._task), STOP_TIMEOUT)

    async def logout(self) -> None:
        if self._client is not None and not self._registering and self._task is not None and not self._task.done():
            self._closing = True
            try:
                async with self._engine.gate.shared():
                    await self._client.logout()
            except Exception as exc:  # the supervisor wipes the credentials either way
                log.warning("session %s: logout at WhatsApp failed: %s", self._ctx.session_id, exc)
        self._closing = True
        await self._shutdown()
        await asyncio.to_thread(self.file.remove)

    def alive(self) -> bool:
        return self._task is not None and not self._task.done() and not self._ended

    # operations ------------------------------------------------------------------------------------------------

    async def reset_contact(self, contact: str) -> None:
        """Drop whatsmeow's encryption sessions with one contact, in its own store (neonize has no call for it)."""
        user = contact.partition("@")[0]
        if not user:
            raise EngineUnavailable("no contact to reset")
        deleted = await asyncio.to_thread(self.file.forget_contact, user)
        log.info("session %s: %d encryption session(s) of one contact dropped", self._ctx.session_id, deleted)

    async def request_pairing_code(self, phone: str) -> str:
        if not self._registering or not self.alive():
            raise EngineUnavailable("a pairing code can be requested only while the session waits to be linked")
        try:
            async with self._engine.gate.shared():
                code = str(await self._client.PairPhone(phone.lstrip("+"), True, client_name=ClientName.LINUX))
        except Exception as exc:
            raise EngineUnavailable(f"WhatsApp refused the pairing request: {exc}") from None
        await self._ctx.emit(PairingCode(code))
        return code

    async def send(self, message: OutgoingMessage) -> SentMessage:
        if self._registering or not self.alive():
            raise EngineUnavailable("the session is not connected")
        try:
            async with self._engine.gate.shared():
                upload = None
                if isinstance(message.content, Media):
                    kind = _UPLOADS[mapping.media_type(message.content)]
                    upload = await self._client.upload(message.content.data, kind)
                built = mapping.outgoing(message, upload, secrets.token_bytes(32), self._ctx.clock())
                response = await self._client.send_message(mapping.to_jid(message.chat), built)
        except Exception as exc:
            raise self._send_error(exc) from None
        whatsapp_id = str(response.ID)
        await self._ctx.auth.put_many({(SENT_NS, whatsapp_id): message.id.encode()})
        return SentMessage(whatsapp_id, float(response.Timestamp) or self._ctx.clock())

    def _send_error(self, exc: Exception) -> Exception:
        """A refusal of this one message fails it; anything else leaves it in doubt for the next connection."""
        text = str(exc)
        lowered = text.lower()
        if any(word in lowered for word in ("not on whatsapp", "invalid jid", "too large", "server returned error 4")):
            return SendRejected(text[:300])
        return EngineUnavailable(f"sending failed: {text[:300]}")

    # the save loop ---------------------------------------------------------------------------------------------

    async def _save_periodically(self) -> None:
        """Keep the vault's snapshot at most ``snapshot_interval`` seconds behind whatsmeow's file."""
        interval = self._engine.snapshot_interval
        while interval > 0 and not self._ended:
            await asyncio.sleep(interval)
            if self._registering:
                continue
            try:
                await self.snapshots.take()
            except LeaseLost as exc:
                await self._end(Disconnected("lease lost", retryable=False, error=exc))
                return
            except Exception:
                log.exception("session %s: snapshot failed; retrying at the next interval", self._ctx.session_id)
