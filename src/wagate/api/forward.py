"""Requests that only the worker running a session can answer (its QR code, a pairing code), forwarded to it.

With several workers behind one address, a tenant's request reaches any of them; the session's lease says which
worker runs it, and that worker's row the address it gave (``WAGATE_WORKER_URL``). The request goes there once,
with the caller's API key (the other worker checks it again) and a header that stops it from going further.
"""

from __future__ import annotations

import aiohttp
from fastapi import Request, Response

from wagate.domain.sessions import Session
from wagate.errors import ServiceUnavailable, Unprocessable
from wagate.gateway import Gateway

__all__ = ["FORWARDED", "FORWARD_TIMEOUT", "to_owner"]

FORWARDED = "X-Wagate-Forwarded"  # the worker that forwarded the request; such a request is never forwarded again
FORWARD_TIMEOUT = 20.0  # a pairing code takes the engine a round trip to WhatsApp
_PASSED = ("x-api-key", "accept", "content-type")
_KEPT = ("content-type", "cache-control")


async def to_owner(request: Request, gateway: Gateway, here: str, session: Session) -> Response | None:
    """The answer of the worker that runs ``session``; None when it runs here (the process ``here``) or nowhere, or
    when the request was forwarded here already (the caller then answers as for a session that is not ready)."""
    if request.headers.get(FORWARDED):
        return None
    holder = await gateway.store.workers.runs_on(session.id)
    if holder is None or holder[0] == here:
        return None
    owner, url = holder
    if url is None:
        raise Unprocessable(
            f"the session runs on worker {owner}, which gives no WAGATE_WORKER_URL to forward this request to",
            code="runs_elsewhere",
        )
    headers = {name: value for name in _PASSED if (value := request.headers.get(name)) is not None}
    headers[FORWARDED] = here
    target = url + request.url.path + (f"?{request.url.query}" if request.url.query else "")
    try:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=FORWARD_TIMEOUT)) as client,
            client.request(
                request.method, target, headers=headers, data=await request.body(), allow_redirects=False
            ) as answer,
        ):
            body = await answer.read()
            kept = {name: value for name in _KEPT if (value := answer.headers.get(name)) is not None}
            return Response(body, status_code=answer.status, headers=kept)
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise ServiceUnavailable(
            f"worker {owner}, which runs the session, did not answer ({type(exc).__name__})", code="worker_unreachable"
        ) from None
