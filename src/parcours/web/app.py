"""The web application: carrier webhooks and the placeholder behind debtors' links.

- `POST /webhooks/sms/{creditor}/status` and `/inbound`: Twilio's status callbacks and
  incoming messages, refused unless signed with the creditor's SMS token
  (`X-Twilio-Signature`, over the public URL Twilio called). Reports become case events;
  STOP opts the number out of SMS and calls for that creditor.
- `GET /p/{token}`: the link in every message. A valid, unexpired token records a click
  (a journey event) and shows what is owed and how to pay; the full debtor page replaces
  this placeholder with the debtor-page issue. `GET|POST /o/{token}`: opt out of a
  channel, including e-mail clients' one-click `List-Unsubscribe-Post`.
- `POST /p/{token}/pay`: the PSP's hosted checkout for what the case owes (the creditor's
  `psp:` in the channels file); `GET /p/{token}/paid` the page the debtor comes back to.
  `POST /webhooks/psp/{creditor}`: the PSP's notification, verified (signature and
  replay window, or the payment fetched back from the PSP's API) and booked once per
  PSP payment id — the next tick then sends nothing more.

Handlers are plain functions run in the thread pool: the store is synchronous.
"""

from __future__ import annotations

import datetime as dt
import html
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import quote

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from parcours.channels.base import DeliveryEvent, DeliveryKind
from parcours.channels.content import Channel
from parcours.channels.links import LinkError, Links
from parcours.journeys.library import Library
from parcours.payments.psp import (
    Psp,
    PspError,
    WebhookIgnored,
    WebhookRejected,
    psp_from_config,
)
from parcours.runtime.dispatch import record_delivery
from parcours.runtime.payments import MatchError, book_payment
from parcours.settings import Settings, get_settings
from parcours.store.db import connect
from parcours.store.messages import MessageStore
from parcours.store.payments import PaymentStore
from parcours.store.uow import UnitOfWork
from parcours.web.api import mount_api

__all__ = ["create_app"]

_CONSENT = {"email": "email_consent", "sms": "phone_consent", "letter": "postal_consent"}
_WORDS = {
    "fr": ("Votre dossier", "Montant à payer", "Communication structurée", "Compte",
           "Votre page personnelle arrive bientôt. Vous pouvez déjà payer par virement.",
           "Ne plus recevoir de messages par", "Confirmer", "C'est noté : plus de messages par"),
    "nl": ("Uw dossier", "Te betalen bedrag", "Gestructureerde mededeling", "Rekening",
           "Uw persoonlijke pagina komt binnenkort. U kunt nu al betalen met een overschrijving.",
           "Geen berichten meer via", "Bevestigen", "Genoteerd: geen berichten meer via"),
    "en": ("Your file", "Amount to pay", "Structured communication", "Account",
           "Your personal page is coming soon. You can already pay by bank transfer.",
           "No more messages by", "Confirm", "Done: no more messages by"),
}  # fmt: skip
_PAY_ONLINE = {"fr": "Payer en ligne", "nl": "Online betalen", "en": "Pay online"}
# After the checkout: (received, still being confirmed by the PSP).
_PAID = {
    "fr": ("Merci, votre paiement est bien reçu.",
           "Merci ! Votre paiement est en cours de confirmation."),
    "nl": ("Bedankt, uw betaling is ontvangen.", "Bedankt! Uw betaling wordt bevestigd."),
    "en": ("Thank you, your payment has been received.",
           "Thank you! Your payment is being confirmed."),
}  # fmt: skip


def create_app(settings: Settings | None = None, library: Library | None = None) -> FastAPI:
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
    mount_api(app, engine, settings)  # the integrator API under /api/v1

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

    def case_of(token: str, purpose: Any) -> tuple[Any, Any, Any]:
        """(creditor id, case, debtor) of a link, or the HTTP error a debtor should see."""
        try:
            case_text = links.read(purpose, token, _now())
        except LinkError as error:
            raise HTTPException(410 if "expired" in str(error) else 404, str(error)) from error
        with UnitOfWork(engine) as uow:
            for creditor in uow.creditors.all():
                found = MessageStore(uow.connection(), creditor.id).case_debtor(case_text)
                if found is not None:
                    return creditor.id, *found
        raise HTTPException(404, "this link is not valid")

    def page(token: str) -> str:
        creditor, case, debtor = case_of(token, "page")
        with engine.begin() as connection:
            store = MessageStore(connection, creditor)
            store.add_event(case, debtor, "message.clicked", _now(), {"via": "link"})
            facts = store.message_facts([case])[case]
        lang = facts.language if facts.language in _WORDS else "fr"
        words = _WORDS[lang]
        owed = sum(i.open_minor for i in facts.invoices) + sum(facts.fees.values())
        currency = facts.invoices[0].currency if facts.invoices else "EUR"
        digits = facts.paying_communication or ""
        communication = f"+++{digits[:3]}/{digits[3:7]}/{digits[7:]}+++" if digits else "-"
        pay_online = ""
        if owed > 0 and has_psp(creditor):
            pay_online = (
                f'<form method="post" action="/p/{html.escape(token)}/pay">'
                f"<button>{_PAY_ONLINE[lang]}</button></form>"
            )
        return _html(
            lang,
            f"<main><h1>{words[0]} {html.escape(facts.case_ref)}</h1><p>{words[4]}</p><dl>"
            f"<dt>{words[1]}</dt><dd>{owed / 100:,.2f} {currency}</dd>"
            f"<dt>{words[2]}</dt><dd>{communication}</dd></dl>{pay_online}</main>",
        )

    def creditor_name(creditor: Any) -> str:
        with UnitOfWork(engine) as uow:
            return next(c.name for c in uow.creditors.all() if c.id == creditor)

    def has_psp(creditor: Any) -> bool:
        from parcours.channels.config import ChannelsError, load_channels

        try:
            setup = load_channels(settings.channels_file).for_creditor(creditor_name(creditor))
        except ChannelsError:
            return False
        return setup.psp is not None

    @app.get("/p/{token}", response_class=HTMLResponse)
    def debtor_link(token: str) -> str:
        return page(token)

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

    def checkout(token: str) -> str:
        creditor, case, _ = case_of(token, "page")
        name = creditor_name(creditor)
        with engine.connect() as connection:
            facts = MessageStore(connection, creditor).message_facts([case])[case]
        owed = sum(i.open_minor for i in facts.invoices) + sum(facts.fees.values())
        if owed <= 0:
            raise HTTPException(409, "nothing to pay on this file")
        currency = facts.invoices[0].currency
        base = settings.public_url.rstrip("/")
        psp = psp_of(name)
        try:
            made = psp.create_checkout(
                amount_minor=owed,
                currency=currency,
                description=f"{name} {facts.case_ref}",
                # One checkout per case, amount and day: a double tap reuses it.
                reference=f"{facts.case_text}:{owed}:{_now():%Y%m%d}",
                redirect_url=f"{base}/p/{token}/paid",
                webhook_url=f"{base}/webhooks/psp/{quote(name, safe='')}",
                metadata={"case": facts.case_text},
            )
        except PspError as error:
            raise HTTPException(502, "the payment service is not available now") from error
        finally:
            psp.close()
        return made.checkout_url

    @app.post("/p/{token}/pay")
    def pay(token: str) -> Response:
        return RedirectResponse(checkout(token), status_code=303)

    @app.get("/p/{token}/paid", response_class=HTMLResponse)
    def paid(token: str) -> str:
        creditor, case, _ = case_of(token, "page")
        with engine.connect() as connection:
            facts = MessageStore(connection, creditor).message_facts([case])[case]
        lang = facts.language if facts.language in _PAID else "fr"
        owed = sum(i.open_minor for i in facts.invoices)
        done, waiting = _PAID[lang]
        return _html(lang, f"<h1>{done if owed <= 0 else waiting}</h1>")

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

    def language(token: str, purpose: Any) -> str:
        creditor, case, _ = case_of(token, purpose)
        with engine.connect() as connection:
            spoken = MessageStore(connection, creditor).message_facts([case])[case].language
        return spoken if spoken in _WORDS else "fr"

    @app.get("/o/{token}", response_class=HTMLResponse)
    def opt_out_form(token: str) -> str:
        lang = language(token, "opt-out")
        buttons = "".join(
            f'<button name="channel" value="{c}">{_WORDS[lang][5]} {c}</button> ' for c in _CONSENT
        )
        return _html(lang, f'<form method="post">{buttons}</form>')

    @app.post("/o/{token}", response_class=HTMLResponse)
    async def opt_out(token: str, request: Request) -> str:
        form = await request.form()
        # RFC 8058: the one-click POST of an e-mail client carries only this field.
        one_click = form.get("List-Unsubscribe") == "One-Click"
        channel = "email" if one_click else str(form.get("channel", ""))
        if channel not in _CONSENT:
            raise HTTPException(400, "choose email, sms or letter")

        def apply() -> None:
            creditor, case, debtor = case_of(token, "opt-out")
            with engine.begin() as connection:
                store = MessageStore(connection, creditor)
                store.opt_out(debtor, _CONSENT[channel], _now())
                store.add_event(case, debtor, "message.opted_out", _now(), {"channel": channel})

        await run_in_threadpool(apply)
        lang = await run_in_threadpool(language, token, "opt-out")
        return _html(lang, f"<p>{_WORDS[lang][7]} {html.escape(channel)}.</p>")

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


def _html(lang: str, body: str) -> str:
    return (
        f'<!DOCTYPE html><html lang="{lang}"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>parcours</title></head><body>{body}</body></html>"
    )
