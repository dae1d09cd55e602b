"""Signing in and out of the back office.

One message for every failed sign-in (unknown address, wrong password, locked or
disabled account): the page does not tell which addresses exist. Each sign-in, failure
of a known account and sign-out is audited under the user's creditor.
"""

from __future__ import annotations

import hmac
import math
from typing import Annotated, Any, Final

from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from parcours.store.bulk import PortfolioWriter
from parcours.store.users import LOCK, SignIn, UserStore
from parcours.web.backoffice.auth import (
    CSRF_FIELD,
    LOGIN_COOKIE,
    PATH,
    SESSION_COOKIE,
    CurrentUser,
    Refused,
    form_of,
    landing,
    new_login_cookie,
    office_of,
    require_user,
    safe_next,
)

__all__ = ["router"]

router = APIRouter(prefix=PATH)

FAILED: Final = (
    "Wrong email or password, or the account is locked after too many attempts "
    f"(try again in {int(LOCK.total_seconds() // 60)} minutes)."
)
TOO_MANY: Final = "Too many failed sign-ins from this address: try again in {minutes} minute(s)."
_LOGIN_MAX_AGE: Final = 3600


def _login_page(
    request: Request, *, email: str = "", next_path: str = "", error: str = "", status: int = 200
) -> Response:
    office = office_of(request)
    cookie = request.cookies.get(LOGIN_COOKIE) or new_login_cookie()
    response: Response = office.render(
        request, "login.html", status, csrf=office.login_csrf_for(cookie), email=email,
        next_path=next_path, error=error, user=None,
    )  # fmt: skip
    response.set_cookie(
        LOGIN_COOKIE, cookie, max_age=_LOGIN_MAX_AGE, path=f"{PATH}/login", httponly=True,
        samesite="strict", secure=office.secure,
    )  # fmt: skip
    return response


@router.get("/login")
def login_form(request: Request, next: str = "") -> Response:
    office = office_of(request)
    token = request.cookies.get(SESSION_COOKIE)
    if token and office.signed_in(token) is not None:
        return RedirectResponse(safe_next(next), status_code=303)
    return _login_page(request, next_path=safe_next(next) if next else "")


@router.post("/login")
async def login(request: Request) -> Response:
    office = office_of(request)
    form = await form_of(request)
    cookie = request.cookies.get(LOGIN_COOKIE, "")
    presented = str(form.get(CSRF_FIELD, ""))
    if not cookie or not hmac.compare_digest(
        presented.encode(), office.login_csrf_for(cookie).encode()
    ):
        raise Refused(403, "This form has expired", "Reload the sign-in page and try again.")
    email = str(form.get("email", "")).strip()[:254]
    password = str(form.get("password", ""))
    asked = str(form.get("next", ""))
    address = request.client.host if request.client else ""
    if not office.failed_signins.allows(address):
        wait = max(1, math.ceil(office.failed_signins.retry_after(address) / 60))
        response = _login_page(
            request, email=email, next_path=safe_next(asked) if asked else "",
            error=TOO_MANY.format(minutes=wait), status=429,
        )  # fmt: skip
        response.headers["Retry-After"] = str(wait * 60)
        return response

    def attempt() -> tuple[SignIn, str | None]:
        now = office.now()
        with office.engine.begin() as connection:
            store = UserStore(connection, office.hasher)
            outcome = store.sign_in(email, password, now)
            token = None
            if outcome.user is not None:
                store.purge_sessions(now)
                token = store.create_session(outcome.user.id, now)
            if outcome.known is not None:
                known = outcome.known
                action = "user.signed_in" if outcome.user else "user.sign_in_refused"
                details: dict[str, Any] = {} if outcome.user else {"reason": outcome.reason}
                PortfolioWriter(connection, known.creditor_id).audit(
                    [(f"user:{known.email}", action, f"user:{known.id}", details)], now
                )
        return outcome, token

    outcome, token = await run_in_threadpool(attempt)
    if token is None or outcome.user is None:
        office.failed_signins.hit(address)
        return _login_page(
            request, email=email, next_path=safe_next(asked) if asked else "", error=FAILED,
            status=401,
        )  # fmt: skip
    next_path = safe_next(asked) if asked else landing(outcome.user.role)
    response = RedirectResponse(next_path, status_code=303)
    response.set_cookie(
        SESSION_COOKIE, token, path=PATH, httponly=True, samesite="lax", secure=office.secure,
    )  # fmt: skip
    response.delete_cookie(LOGIN_COOKIE, path=f"{PATH}/login")
    return response


@router.post("/logout")
def logout(request: Request, user: Annotated[CurrentUser, Depends(require_user())]) -> Response:
    office = office_of(request)
    token = request.cookies.get(SESSION_COOKIE, "")
    with office.engine.begin() as connection:
        UserStore(connection, office.hasher).delete_session(token)
        PortfolioWriter(connection, user.creditor_id).audit(
            [(user.actor, "user.signed_out", f"user:{user.id}", {})], office.now()
        )
    response = RedirectResponse(f"{PATH}/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path=PATH)
    return response
