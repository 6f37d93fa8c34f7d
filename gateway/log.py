"""Logging: structlog, as JSON lines or readable console lines. A pipeline of small processors."""
from __future__ import annotations

import logging
import sys

import structlog

_REDACT = ("pin", "password", "passphrase", "secret", "key_password")


def _redact(_, __, event: dict) -> dict:
    for k in list(event):
        if any(word in k.lower() for word in _REDACT):
            event[k] = "***"
    return event


def setup(fmt: str = "console", level: str = "info", stream=None) -> None:
    # libraries' own loggers: pika logs a stack trace for every dropped connection, which the
    # transports already report as one line each
    logging.getLogger("pika").setLevel(logging.CRITICAL)
    logging.getLogger("paramiko").setLevel(logging.ERROR)
    renderer = structlog.processors.JSONRenderer(ensure_ascii=False) if fmt == "json" else \
        structlog.dev.ConsoleRenderer(colors=False)
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            _redact,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(getattr(logging, level.upper())),
        logger_factory=structlog.PrintLoggerFactory(stream or sys.stderr),
        cache_logger_on_first_use=False,
    )


def get_logger(name: str):
    return structlog.get_logger(component=name)
