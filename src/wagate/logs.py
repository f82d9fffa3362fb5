"""Logging set-up: text or JSON lines under ``wagate.*``, with the tenant and session of the work in hand.

Standard library only: the webhook sender's child process sets its logging up with it too, without loading the
settings (pydantic costs it about 11 MiB)."""

from __future__ import annotations

import json
import logging
import sys
import time
from contextvars import ContextVar
from enum import StrEnum

__all__ = [
    "LOG_LEVELS",
    "ContextFilter",
    "JsonFormatter",
    "LogFormat",
    "QuietWebSockets",
    "TextFormatter",
    "configure_logging",
    "session_var",
    "tenant_var",
]


class LogFormat(StrEnum):
    TEXT = "text"
    JSON = "json"


LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")

tenant_var: ContextVar[str | None] = ContextVar("wagate_tenant", default=None)
session_var: ContextVar[str | None] = ContextVar("wagate_session", default=None)


class ContextFilter(logging.Filter):
    """Adds ``tenant`` and ``session`` from the current context to every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.tenant = tenant_var.get()
        record.session = session_var.get()
        return True


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        ids = [f"{k}={v}" for k in ("tenant", "session") if (v := getattr(record, k, None))]
        return f"{line} [{' '.join(ids)}]" if ids else line


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key in ("tenant", "session"):
            value = getattr(record, key, None)
            if value:
                entry[key] = value
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


class QuietWebSockets(logging.Filter):
    """Drops uvicorn's line per WebSocket opened or closed: thousands of sessions would drown the log."""

    NOISE = ("connection open", "connection closed")

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not (message in self.NOISE or ('"WebSocket ' in message and message.endswith("[accepted]")))


def configure_logging(level: str, fmt: LogFormat) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt is LogFormat.JSON else TextFormatter())
    handler.addFilter(ContextFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # uvicorn's access log would print request paths with query strings; ours are never secret, but keep it quiet.
    logging.getLogger("uvicorn.access").setLevel(logging.WARNING)
    logging.getLogger("uvicorn.error").addFilter(QuietWebSockets())
