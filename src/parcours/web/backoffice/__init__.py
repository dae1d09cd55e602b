"""The back office: agents' inbox and phone tasks behind a sign-in, under `/backoffice`.

`mount_backoffice(app)` adds the routes and reads what it needs from `app.state`
(engine, settings, chat hub, secret); `require_user(*roles)` is the dependency any
back-office page (such as the strategists' dashboard) uses to get the `CurrentUser`.

Routes: `GET|POST /backoffice/login`, `POST /backoffice/logout`, `GET /backoffice/`
(to the inbox), `GET /backoffice/inbox`, `GET /backoffice/inbox/{conversation}`,
`POST /backoffice/inbox/{conversation}/reply|promise|plan|dispute|resolve|pause|resume`,
`GET /backoffice/tasks`, `GET|POST /backoffice/tasks/{attempt}`, the agent's
WebSocket `/backoffice/ws/{conversation}`, and the strategists' dashboard under
`/backoffice/dashboard` (`parcours.web.backoffice.dashboard`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

from argon2 import PasswordHasher
from fastapi import FastAPI, Request
from fastapi.responses import RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from parcours.web.backoffice.auth import (
    ACT,
    READ,
    TEMPLATE_DIR,
    BackOffice,
    CurrentUser,
    Refused,
    SignInRequired,
    office_of,
    require_user,
    sign_in_url,
)
from parcours.web.backoffice.views import install_filters

__all__ = ["ACT", "READ", "BackOffice", "CurrentUser", "mount_backoffice", "require_user"]


def mount_backoffice(
    app: FastAPI,
    *,
    clock: Callable[[], dt.datetime] | None = None,
    hasher: PasswordHasher | None = None,
) -> None:
    """Add the back office's routes to `app` (its state must hold engine, settings,
    chat_hub and secret). `clock` and `hasher` serve tests; both can also be replaced
    later on `app.state.backoffice`."""
    from parcours.web.backoffice import dashboard, inbox, login, tasks

    settings = app.state.settings
    templates = Jinja2Templates(directory=TEMPLATE_DIR)
    install_filters(templates.env, settings.default_timezone)
    office = BackOffice(
        engine=app.state.engine,
        settings=settings,
        secret=app.state.secret,
        hub=app.state.chat_hub,
        templates=templates,
        hasher=hasher,
    )
    if clock is not None:
        office.clock = clock
    app.state.backoffice = office
    app.include_router(login.router, include_in_schema=False)
    app.include_router(inbox.router, include_in_schema=False)
    app.include_router(tasks.router, include_in_schema=False)
    dashboard.install(app)

    async def sign_in_first(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, SignInRequired)
        return RedirectResponse(sign_in_url(exc.next_path), status_code=303)

    async def refused(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, Refused)
        return office_of(request).render(
            request, "error.html", exc.status, title=exc.title, detail=exc.detail, user=None
        )

    app.add_exception_handler(SignInRequired, sign_in_first)
    app.add_exception_handler(Refused, refused)
