"""Structured logging: JSON lines when not on a terminal, and never personal data.

Log events name records by id or ref. As a second line of defence, a processor blanks
any field whose key names personal data, should a caller pass one by mistake.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog

__all__ = ["PERSONAL_KEYS", "configure_logging", "redact_personal_data"]

PERSONAL_KEYS = frozenset(
    {
        "name",
        "email",
        "phone",
        "mobile",
        "street",
        "postcode",
        "city",
        "address",
        "birth_year",
        "iban",
        "password",
        "secret",
        "token",
    }
)


def redact_personal_data(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """Replace values of keys that name personal data or secrets."""
    for key in event_dict.keys() & PERSONAL_KEYS:
        event_dict[key] = "[redacted]"
    return event_dict


def configure_logging(level: str = "INFO", *, json: bool | None = None) -> None:
    """Log to stderr; JSON when stderr is not a terminal (or when `json` says so)."""
    if json is None:
        json = not sys.stderr.isatty()
    renderer: Any = structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer()
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            redact_personal_data,
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelNamesMapping()[level]),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=False,
    )
