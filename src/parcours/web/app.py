"""The web application: the debtor's page, the back office, the integrator API and the
webhooks of carriers and payment services.

- `/p/{token}` and below: the debtor's page (`parcours.web.portal`); `/o/{token}`: opt
  out of a channel, including e-mail clients' one-click `List-Unsubscribe-Post`.
- `/backoffice/`: the agents' inbox and tasks behind a login (`parcours.web.backoffice`).
- `/api/v1`: the integrator API (`parcours.web.api`).
- `POST /webhooks/sms/{creditor}/status` and `/inbound`: Twilio's status callbacks and
  incoming messages, refused unless signed with the creditor's SMS token
  (`X-Twilio-Signature`, over the public URL Twilio called). Reports become case events;
  STOP opts the number out of SMS and calls for that creditor.
- `POST /webhooks/psp/{creditor}`: the PSP's notification, verified (signature and
  replay window, or the payment fetched back from the PSP's API) and booked once per
  PSP payment id — the next tick then sends nothing more.

Every HTML response carries a strict Content-Security-Policy (scripts and styles from
this origin only), refuses framing and sends no referrer: a debtor's link never leaks
to another site. Handlers are plain functions run in the thread pool: the store is
synchronous.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Final

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import Response
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from parcours.channels.base import DeliveryEvent, DeliveryKind
from parcours.channels.content import Channel
from parcours.channels.links import Links
from parcours.journeys.library import Library
from parcours.payments.psp import (
    Psp,
    PspError,
    WebhookIgnored,
    WebhookRejected,
    psp_from_config,
)
from parcours.personas.catalog import load_catalog
from parcours.runtime.dispatch import record_delivery
from parcours.runtime.payments import MatchError, book_payment
from parcours.settings import Settings, get_settings
from parcours.store.db import connect
from parcours.store.messages import MessageStore
from parcours.store.payments import PaymentStore
from parcours.store.uow import UnitOfWork
from parcours.web.api import mount_api
from parcours.web.backoffice import mount_backoffice
from parcours.web.chat import ChatHub
from parcours.web.portal.routes import mount_portal

__all__ = ["create_app"]

STATIC_DIR: Final = Path(__file__).resolve().parent / "static"
_HEADERS: Final = (
    (b"content-security-policy",
     b"default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
     b"connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'"),
    (b"x-frame-options", b"DENY"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
)  # fmt: skip


class SecurityHeaders:
    """Security headers on every HTML page; personal pages are never cached (pure ASGI:
    no overhead on the API's hot path beyond one header check)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        personal = scope["path"].startswith(("/p/", "/o/", "/backoffice"))

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                if any(k == b"content-type" and v.startswith(b"text/html") for k, v in headers):
                    headers.extend(_HEADERS)
                if personal and not any(k == b"cache-control" for k, _ in headers):
                    headers.append((b"cache-control", b"no-store"))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, with_headers)


def create_app(
    settings: Settings | None = None,
    library: Library | None = None,
    clock: Callable[[], dt.datetime] | None = None,
) -> FastAPI:
    """The whole web application; `clock` (UTC now) is injectable for clock-travel tests."""
    settings = settings or get_settings()
    engine = connect(settings.database_url)
    secret = settings.resolved_secret_key()
    if secret is None:
        raise RuntimeError("no secret key to check debtor links: run `parcours init`")
    links = Links(secret.get_secret_value(), settings.public_url, settings.link_days)
    if library is None:
        from parcours.journeys.library import load_library

        library = load_library(settings.journeys_dir)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        engine.dispose()

    app = FastAPI(title="parcours", docs_url=None, redoc_url=None, lifespan=lifespan)
    app.state.engine = engine
    app.state.settings = settings
    app.state.library = library
    app.state.secret = secret.get_secret_value()
    app.state.chat_hub = ChatHub(
        catalog=load_catalog(settings.personas_dir), default_persona=settings.default_persona
    )
    app.state.clock = clock or _now
    app.add_middleware(SecurityHeaders)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    mount_api(app, engine, settings)  # the integrator API under /api/v1
    mount_portal(app, links)
    mount_backoffice(app, clock=clock)

    def creditor_id(name: str) -> Any:
        with UnitOfWork(engine) as uow:
            found = uow.creditors.by_name(name)
        if found is None:
            raise HTTPException(404, "unknown creditor")
        return found.id

    def sms_token(name: str) -> str:
        from parcours.channels.config import ChannelsError, load_channels
        from parcours.channels.sms import SmsHttpConfig

        try:
            setting = (
                load_channels(settings.channels_file).for_creditor(name).providers.get(Channel.SMS)
            )
        except ChannelsError as error:
            raise HTTPException(404, "no SMS set-up for this creditor") from error
        if setting is None:
            raise HTTPException(404, "no SMS set-up for this creditor")
        return SmsHttpConfig.model_validate(setting.options()).token.get_secret_value()

    async def signed_form(request: Request, creditor: str) -> dict[str, str]:
        from parcours.channels.sms import verify_twilio_signature

        form = {k: str(v) for k, v in (await request.form()).multi_items()}
        url = f"{settings.public_url.rstrip('/')}{request.url.path}"
        if request.url.query:
            url += f"?{request.url.query}"
        token = await run_in_threadpool(sms_token, creditor)
        signature = request.headers.get("X-Twilio-Signature", "")
        if not verify_twilio_signature(url, form, signature, token):
            raise HTTPException(403, "bad signature")
        return form

    @app.post("/webhooks/sms/{creditor}/status", status_code=204)
    async def sms_status(creditor: str, request: Request) -> Response:
        from parcours.channels.sms import parse_status_callback

        form = await signed_form(request, creditor)
        try:
            event = parse_status_callback(form, attempt_id=request.query_params.get("attempt"))
        except ValueError as error:
            raise HTTPException(400, str(error)) from error
        if event is not None:
            owner = await run_in_threadpool(creditor_id, creditor)
            await run_in_threadpool(record_delivery, engine, owner, event, library, _now())
        return Response(status_code=204)

    @app.post("/webhooks/sms/{creditor}/inbound")
    async def sms_inbound(creditor: str, request: Request) -> Response:
        from parcours.channels.sms import parse_inbound

        form = await signed_form(request, creditor)
        try:
            event = parse_inbound(form)
        except ValueError as error:
            raise HTTPException(400, str(error)) from error
        owner = await run_in_threadpool(creditor_id, creditor)
        await run_in_threadpool(_inbound, engine, owner, event, library)
        # An empty TwiML answer: Twilio sends nothing back (its own STOP reply aside).
        return Response("<Response/>", media_type="text/xml")

    def psp_of(name: str) -> Psp:
        from parcours.channels.config import ChannelsError, load_channels

        try:
            setting = load_channels(settings.channels_file).for_creditor(name).psp
        except ChannelsError as error:
            raise HTTPException(404, "no online payment for this creditor") from error
        if setting is None:
            raise HTTPException(404, "no online payment for this creditor")
        options: dict[str, Any] = {"api_key": setting.api_key.get_secret_value()}
        if setting.webhook_secret is not None:
            options["webhook_secret"] = setting.webhook_secret.get_secret_value()
        if setting.base_url:
            options["base_url"] = setting.base_url
        return psp_from_config(setting.kind, **options)

    def psp_webhook(name: str, headers: dict[str, str], body: bytes) -> str:
        owner = creditor_id(name)
        psp = psp_of(name)
        try:
            payment = psp.payment_from_webhook(headers, body, _now())
        except WebhookIgnored:
            return "ignored"
        except WebhookRejected as error:
            raise HTTPException(400, f"webhook refused: {error}") from error
        except PspError as error:
            if error.transient:  # the PSP could not be asked now: it retries its webhook
                raise HTTPException(503, "payment service unreachable") from error
            raise HTTPException(400, "webhook refused: the PSP does not know it") from error
        finally:
            psp.close()
        case_text = payment.metadata.get("case")
        if case_text is None:
            raise HTTPException(400, "webhook refused: no case in the payment's metadata")
        if payment.status != "paid":
            return payment.status
        with engine.begin() as connection:
            store = PaymentStore(connection, owner)
            case = store.case_key(case_text)
            try:
                booked = book_payment(
                    connection, owner, case, payment.amount_minor, payment.currency,
                    payment.paid_at or _now(), f"psp:{payment.psp_payment_id}", "psp", _now(),
                )  # fmt: skip
            except MatchError as error:
                raise HTTPException(400, f"webhook refused: {error}") from error
        return "booked" if booked else "already booked"

    @app.post("/webhooks/psp/{creditor}")
    async def psp_notification(creditor: str, request: Request) -> dict[str, str]:
        body = await request.body()
        headers = dict(request.headers)
        outcome = await run_in_threadpool(psp_webhook, creditor, headers, body)
        return {"status": outcome}

    return app


def _inbound(engine: Any, creditor: Any, event: DeliveryEvent, library: Library) -> str:
    """A message from a number: a reply to our last SMS to it; STOP opts it out."""
    number = event.address or ""
    with engine.begin() as connection:
        store = MessageStore(connection, creditor)
        attempt = store.last_sms_to(number)
        if event.kind is DeliveryKind.OPTED_OUT:
            store.opt_out_number(number, _now())
    if attempt is None:
        return "no message of ours to that number"
    answered = DeliveryEvent(event.kind, event.at, attempt_id=attempt)
    return record_delivery(engine, creditor, answered, library, _now())


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)
