"""Who may see a debtor's page: the signed link, then a light second factor, then a
short-lived signed cookie for that one case.

The link (`/p/{token}`, `parcours.channels.links`) names the case and expires. Before
showing anything the page asks the debtor's postcode or birth year (per creditor); after
`MAX_FAILURES` wrong answers within `WINDOW` the case's page is locked for `LOCK`. A right
answer sets `PORTAL_COOKIE`: the case id signed (itsdangerous, its own salt) with the
time, valid `SESSION_HOURS`, sent only under `/p/`. Every request checks that the cookie's
case is the link's case: a cookie of one debtor never opens another's page.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any, Final

from itsdangerous import BadSignature, URLSafeTimedSerializer

__all__ = [
    "LOCK",
    "MAX_FAILURES",
    "PORTAL_COOKIE",
    "SESSION_HOURS",
    "WINDOW",
    "DebtorAccess",
    "portal_cookie_value",
    "read_portal_cookie",
]

PORTAL_COOKIE: Final = "parcours_portal"
SESSION_HOURS: Final = 12
MAX_FAILURES: Final = 5
WINDOW: Final = dt.timedelta(minutes=15)
LOCK: Final = dt.timedelta(minutes=15)
_SALT: Final = "parcours.portal-session"


@dataclass(frozen=True, slots=True)
class DebtorAccess:
    """The case a verified visitor may see and act on, and the creditor it belongs to."""

    creditor_id: Any
    case_id: Any
    debtor_id: Any
    case_text: str  # the case's UUID as text


def _serializer(secret: str) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(secret, salt=_SALT)


def portal_cookie_value(secret: str, case_text: str) -> str:
    """The cookie that proves the second factor was passed for this case."""
    return _serializer(secret).dumps(case_text)


def read_portal_cookie(secret: str, value: str | None, case_text: str) -> bool:
    """Whether `value` is a valid, unexpired cookie for exactly this case."""
    if not value:
        return False
    try:
        signed = _serializer(secret).loads(value, max_age=SESSION_HOURS * 3600)
    except BadSignature:
        return False
    return bool(signed == case_text)
