"""Who is signed in to the back office: sessions, CSRF, roles and the audit of every step.

The session cookie (`SESSION_COOKIE`) holds a random token; the store keeps only its
SHA-256 (`parcours.store.users`). Every POST carries a synchronizer token, the HMAC of
the session token under the app's secret (`CurrentUser.csrf`), in the form field `csrf`
or the `X-CSRF-Token` header; the sign-in form, which has no session yet, uses the HMAC
of a random pre-sign-in cookie instead. A request without a valid token gets 403.

Roles: `viewer` reads, `strategist` reads (its dashboard comes with the analytics),
`agent` and `admin` read and act. `require_user(*roles)` is the dependency every route
uses; each user sees only their own creditor's data.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import secrets
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final
from urllib.parse import quote

from argon2 import PasswordHasher
from fastapi import FastAPI, Request
from fastapi.responses import Response
from fastapi.templating import Jinja2Templates
from sqlalchemy import Engine
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData

from parcours.personas.catalog import Catalog, load_catalog
from parcours.settings import Settings
from parcours.store.bulk import PortfolioWriter
from parcours.store.users import ROLES, SignedIn, UserStore
from parcours.web.throttle import Throttle

__all__ = [
    "ACT",
    "CSRF_FIELD",
    "LOGIN_COOKIE",
    "READ",
    "SESSION_COOKIE",
    "BackOffice",
    "CurrentUser",
    "Refused",
    "SignInRequired",
    "require_user",
]

SESSION_COOKIE: Final = "parcours_session"
LOGIN_COOKIE: Final = "parcours_login"
CSRF_FIELD: Final = "csrf"
CSRF_HEADER: Final = "X-CSRF-Token"
PATH: Final = "/backoffice"
READ: Final = ROLES  # every role reads the inbox and the tasks
ACT: Final = ("admin", "agent")
# Failed sign-ins one client address may make (any accounts), `limits` notation.
FAILED_SIGNINS: Final = "20 per 15 minutes"
_SAFE_METHODS: Final = frozenset({"GET", "HEAD", "OPTIONS"})
TEMPLATE_DIR: Final = Path(__file__).resolve().parent.parent / "templates"


def _utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class SignInRequired(Exception):
    """No valid session: the browser is sent to the sign-in page."""

    def __init__(self, next_path: str = "") -> None:
        super().__init__("sign in first")
        self.next_path = next_path


class Refused(Exception):
    """A request the back office answers with an error page (403, 404, 400)."""

    def __init__(self, status: int, title: str, detail: str = "") -> None:
        super().__init__(title)
        self.status = status
        self.title = title
        self.detail = detail


@dataclass(frozen=True, slots=True)
class CurrentUser:
    """The signed-in person, as routes see them; `csrf` goes in every form they post."""

    id: uuid.UUID
    creditor_id: uuid.UUID
    email: str
    name: str
    role: str
    csrf: str

    @property
    def actor(self) -> str:
        """Who did it, as the audit log names people."""
        return f"user:{self.email}"

    @property
    def can_act(self) -> bool:
        return self.role in ACT


@dataclass
class BackOffice:
    """What the back office's routes share: read from `app.state` by `mount_backoffice`.

    `clock` and `hasher` may be replaced (tests travel in time, or hash faster)."""

    engine: Engine
    settings: Settings
    secret: str
    hub: Any  # parcours.web.chat.ChatHub
    templates: Jinja2Templates
    clock: Callable[[], dt.datetime] = _utc_now
    hasher: PasswordHasher | None = None
    # Failed sign-ins per client address (each account also locks after five).
    failed_signins: Throttle = field(default_factory=lambda: Throttle(FAILED_SIGNINS))
    _catalog: Catalog | None = field(default=None, repr=False)

    @property
    def secure(self) -> bool:
        return self.settings.public_url.startswith("https://")

    def now(self) -> dt.datetime:
        return self.clock()

    def catalog(self) -> Catalog:
        if self._catalog is None:
            self._catalog = load_catalog(self.settings.personas_dir)
        return self._catalog

    def csrf_for(self, session_token: str) -> str:
        return _mac(self.secret, "backoffice-csrf", session_token)

    def login_csrf_for(self, login_cookie: str) -> str:
        return _mac(self.secret, "backoffice-login", login_cookie)

    def signed_in(self, token: str) -> SignedIn | None:
        """The live session of this cookie value (its activity recorded), or None."""
        now = self.now()
        with self.engine.begin() as connection:
            store = UserStore(connection, self.hasher)
            found = store.session(token, now)
            if found is not None:
                store.touch(found, now)
        return found

    def audit(
        self,
        user: CurrentUser,
        action: str,
        subject: str,
        details: dict[str, Any] | None = None,
    ) -> None:
        """Record what an agent saw or did (refs and outcomes only, no personal data)."""
        with self.engine.begin() as connection:
            PortfolioWriter(connection, user.creditor_id).audit(
                [(user.actor, action, subject, details or {})], self.now()
            )

    def render(self, request: Request, template: str, status: int = 200, **values: Any) -> Response:
        return self.templates.TemplateResponse(
            request, f"backoffice/{template}", values, status_code=status
        )


def _mac(secret: str, purpose: str, value: str) -> str:
    return hmac.new(secret.encode(), f"{purpose}:{value}".encode(), hashlib.sha256).hexdigest()


def new_login_cookie() -> str:
    return secrets.token_urlsafe(24)


def office_of(request: Request) -> BackOffice:
    office: BackOffice = request.app.state.backoffice
    return office


def back_office(app: FastAPI) -> BackOffice:
    office: BackOffice = app.state.backoffice
    return office


def safe_next(path: str | None) -> str:
    """Where to go after signing in: only a back-office path of this site."""
    if path and path.startswith(f"{PATH}/") and not path.startswith("//") and "\\" not in path:
        return path
    return f"{PATH}/inbox"


def landing(role: str) -> str:
    """A user's first page: agents work the inbox, the others read the dashboard."""
    return f"{PATH}/inbox" if role == "agent" else f"{PATH}/dashboard"


def sign_in_url(next_path: str) -> str:
    if next_path and next_path != f"{PATH}/inbox":
        return f"{PATH}/login?next={quote(next_path, safe='/')}"
    return f"{PATH}/login"


async def form_of(request: Request) -> FormData:
    return await request.form(max_files=0, max_fields=50)


def require_user(*roles: str) -> Callable[[Request], Awaitable[CurrentUser]]:
    """A dependency: the signed-in user, when their role is one of `roles` (all when none
    given). No session: to the sign-in page; another role: 403; a POST without this
    session's CSRF token: 403."""
    allowed = frozenset(roles or ROLES)
    unknown = allowed - set(ROLES)
    if unknown:
        raise ValueError(f"unknown roles: {', '.join(sorted(unknown))}")

    async def current_user(request: Request) -> CurrentUser:
        office = office_of(request)
        token = request.cookies.get(SESSION_COOKIE, "")
        found = await run_in_threadpool(office.signed_in, token) if token else None
        if found is None:
            raise SignInRequired(request.url.path if request.method in _SAFE_METHODS else "")
        user = found.user
        current = CurrentUser(
            user.id, user.creditor_id, user.email, user.name, user.role, office.csrf_for(token)
        )
        if request.method not in _SAFE_METHODS:
            presented = request.headers.get(CSRF_HEADER)
            if presented is None:
                presented = str((await form_of(request)).get(CSRF_FIELD, ""))
            if not hmac.compare_digest(presented.encode(), current.csrf.encode()):
                raise Refused(403, "This form has expired", "Reload the page and try again.")
        if current.role not in allowed:
            raise Refused(
                403,
                "Not allowed for your role",
                f"A {current.role} account cannot do this. Ask an administrator.",
            )
        return current

    return current_user
