"""The HTTP side of a webhook delivery: the request signed (Standard Webhooks, and WAHA's HMAC when the endpoint has a
key), the SSRF guard, one attempt's outcome.

Used by the dispatcher in its own process, or by the sender process it starts (:mod:`wagate.webhooks.process`).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

from standardwebhooks import Webhook as Signer

from wagate import __version__
from wagate.net.ssrf import BlockedAddress, check_url
from wagate.webhooks.http1 import Http1Client, HttpError, Target

__all__ = [
    "REFUSED",
    "RETRY_AFTER_CAP",
    "Attempt",
    "WebhookClient",
    "parse_retry_after",
    "refused_attempt",
    "signed_headers",
]

RETRY_AFTER_CAP = 86400.0


def parse_retry_after(value: str | None, now: float) -> float | None:
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return min(float(value), RETRY_AFTER_CAP)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return min(max(when.timestamp() - now, 0.0), RETRY_AFTER_CAP)


def signed_headers(
    signers: Sequence[Signer], event_id: str, now: float, body: str, hmac_key: str | None = None
) -> dict[str, str]:
    """The Standard Webhooks headers of one attempt, signed with each of ``signers`` (during a secret's rotation the
    new and the previous one: the signatures space-separated, as the specification has it, so that a receiver
    holding either secret verifies). The timestamp is the whole second the header carries: signing ``now`` itself
    let a time within half a microsecond of the next second round up in the signature but not in the header, and
    the receiver then rightly refused it. With ``hmac_key``, WAHA's headers too: ``x-webhook-hmac``, the hex
    HMAC-SHA512 of the body under that key, and ``x-webhook-hmac-algorithm: sha512``."""
    second = int(now)
    at = datetime.fromtimestamp(second, UTC)
    headers = {
        "webhook-id": event_id,
        "webhook-timestamp": str(second),
        "webhook-signature": " ".join([signer.sign(event_id, at, body) for signer in signers]),
    }
    if hmac_key is not None:
        digest = hmac.new(hmac_key.encode(), body.encode(), hashlib.sha512).hexdigest()
        headers["x-webhook-hmac"] = digest
        headers["x-webhook-hmac-algorithm"] = "sha512"
    return headers


@dataclass(frozen=True, slots=True)
class Attempt:
    """One attempt's outcome. ``refused``: the SSRF guard refused the address, so no request was made (not a
    failure of the receiver's that a retry could mend: the dispatcher makes the delivery a dead letter at once)."""

    ok: bool
    status: int | None = None
    error: str = ""
    retry_after: float | None = None
    refused: bool = False

    @property
    def gone(self) -> bool:
        return self.status == 410


_DELIVERED = Attempt(True, 200)
REFUSED = "address_refused"  # how a refused attempt's error begins (and so the dead letter's and the endpoint's)


def refused_attempt(exc: BlockedAddress) -> Attempt:
    return Attempt(False, error=f"{REFUSED}: {exc}"[:300], refused=True)


_MAX_TARGETS = 10_000


class WebhookClient:
    """HTTP for webhooks: the SSRF guard on every URL and every resolved address, no redirects, one timeout."""

    def __init__(self, *, timeout: float, allow_private: bool, concurrency: int) -> None:
        self.timeout = timeout
        self.allow_private = allow_private
        self._sending = asyncio.Semaphore(concurrency)
        self._http = Http1Client(allow_private=allow_private, user_agent=f"wagate/{__version__}")
        # URL -> its prepared target, or the attempt that refuses it. The URL's own form is checked once (a literal
        # internal address, a scheme); the addresses its host resolves to are checked at every new connection.
        self._targets: dict[str, Target | Attempt] = {}

    def _target(self, url: str) -> Target | Attempt:
        found = self._targets.get(url)
        if found is None:
            try:
                check_url(url, allow_private=self.allow_private)
                found = self._http.prepare(url)
            except BlockedAddress as exc:
                found = refused_attempt(exc)
            except HttpError as exc:
                found = Attempt(False, error=f"HttpError: {exc}"[:300])
            if len(self._targets) >= _MAX_TARGETS:
                self._targets.clear()
            self._targets[url] = found
        return found

    async def post(self, url: str, body: bytes, headers: dict[str, str], now: float) -> Attempt:
        target = self._target(url)
        if isinstance(target, Attempt):
            return target
        headers["content-type"] = "application/json"
        try:
            async with self._sending:
                answer = await self._http.send(target, body, headers, self.timeout)
        except BlockedAddress as exc:
            return refused_attempt(exc)
        except TimeoutError:
            return Attempt(False, error=f"no answer within {self.timeout:g}s")
        except (HttpError, OSError) as exc:
            return Attempt(False, error=f"{type(exc).__name__}: {exc}"[:300])
        if 200 <= answer.status < 300:
            return _DELIVERED if answer.status == 200 else Attempt(True, answer.status)
        retry_after = parse_retry_after(answer.headers.get("retry-after"), now)
        return Attempt(False, answer.status, f"HTTP {answer.status}", retry_after)

    def prune(self) -> None:
        self._http.prune()

    async def close(self) -> None:
        await self._http.close()
