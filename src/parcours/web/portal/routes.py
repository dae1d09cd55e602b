"""The debtor's page: `/p/{token}` and what hangs under it.

One case per link. The first visit asks the light second factor (`access`); then the
main view shows what is owed (each invoice, each fee with its legal basis, the total),
how to pay (EPC QR code, structured communication, a `payto:` link for banking apps, the
PSP's checkout), and the actions: promise, plan, dispute, reminders and contact
preferences, the profiling explanation and objection, the survey, and the chat. Every
form works without JavaScript; htmx (`hx-boost`) only avoids full reloads, and the chat
upgrades to a WebSocket when scripts run.

Each action records what the journey needs (events, promises, plans, disputes) through
the same runtime functions the agents and the API use, then offers the satisfaction
question. Handlers are plain functions run in the thread pool: the store is synchronous.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Final
from urllib.parse import quote

from fastapi import FastAPI, HTTPException, Request, WebSocket
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from parcours.channels.config import ChannelsError, CreditorSetup, load_channels
from parcours.channels.links import LinkError, Links
from parcours.domain.arrangements import ArrangementError, plan_schedule, propose_plans
from parcours.domain.persona import Persona
from parcours.domain.structured_communication import StructuredCommunication
from parcours.payments.epc import EpcPayment, belgian_transfer, format_iban, qr_svg
from parcours.payments.psp import PspError, psp_from_config
from parcours.personas.catalog import Catalog, load_catalog
from parcours.runtime.arrangements import (
    DEFAULT_RULES,
    CaseError,
    create_plan,
    make_promise,
    open_dispute,
)
from parcours.store.messages import MessageStore
from parcours.store.portal import CONSENT_COLUMNS, Overview, PortalStore, locate
from parcours.store.schema import CreditorRow
from parcours.web.portal.access import (
    LOCK,
    MAX_FAILURES,
    PORTAL_COOKIE,
    SESSION_HOURS,
    WINDOW,
    DebtorAccess,
    portal_cookie_value,
    read_portal_cookie,
)
from parcours.web.portal.i18n import LANGUAGES, environment, pick_language

__all__ = ["mount_portal"]

LANG_COOKIE: Final = "parcours_lang"
CSAT_CONTEXTS: Final = ("payment", "promise", "plan", "dispute", "chat", "page")
DISPUTE_REASONS: Final = ("already_paid", "amount_wrong", "not_mine", "service", "other")
CHANNELS: Final = ("email", "sms", "letter")
_MAX_TEXT: Final = 2000


@dataclass(frozen=True, slots=True)
class Visit:
    """A verified visitor: the case, the creditor and its set-up, the session cookie."""

    access: DebtorAccess
    token: str
    creditor: str  # the creditor's name in parcours
    setup: CreditorSetup | None
    cookie: str

    @property
    def shown_name(self) -> str:
        """The creditor's name as its letters print it."""
        return self.setup.profile.name if self.setup is not None else self.creditor


@lru_cache(maxsize=4096)
def _qr(payment: EpcPayment) -> str:
    """The QR code's SVG; drawing one costs milliseconds (segno tries every mask), and a
    debtor's page shows the same one on each visit."""
    return qr_svg(payment)


class PageError(Exception):
    """Shown to the debtor as a page with a status (an expired link, a locked check)."""

    def __init__(self, status: int, title: str, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.title = title
        self.detail = detail


def mount_portal(app: FastAPI, links: Links) -> None:
    """Add the debtor page's routes (state from `app.state`, `clock` included)."""
    engine = app.state.engine
    clock = app.state.clock
    settings = app.state.settings
    secret: str = app.state.secret
    secure = settings.public_url.startswith("https://")

    @lru_cache(maxsize=1)
    def channels(stamp: float) -> Any:
        try:
            return load_channels(settings.channels_file)
        except ChannelsError:
            return None

    def setup_of(name: str) -> CreditorSetup | None:
        path: Path = settings.channels_file
        config = channels(path.stat().st_mtime if path.exists() else 0.0)
        if config is None:
            return None
        return config.creditors.get(name, config.default)  # type: ignore[no-any-return]

    def display(name: str) -> str:
        """The creditor's name as its letters print it."""
        setup = setup_of(name)
        return setup.profile.name if setup is not None else name

    @lru_cache(maxsize=1024)
    def creditor_name(creditor_id: Any) -> str:
        with engine.connect() as connection:
            return str(
                connection.execute(
                    CreditorRow.__table__.select().where(CreditorRow.id == creditor_id)
                )
                .one()
                ._mapping["name"]
            )

    @lru_cache(maxsize=65_536)
    def owner_of(case_text: str) -> tuple[Any, Any] | None:
        """(creditor, debtor) of a case: they never change, so each is read once."""
        with engine.connect() as connection:
            return locate(connection, uuid.UUID(case_text))

    @lru_cache(maxsize=1)
    def catalog() -> Catalog:
        return load_catalog(settings.personas_dir)

    def open_link(token: str) -> DebtorAccess:
        try:
            case_text = links.read("page", token, clock())
        except LinkError as error:
            expired = "expired" in str(error)
            raise PageError(
                410 if expired else 404,
                "This link has expired" if expired else "This link is not valid",
                str(error),
            ) from error
        found = owner_of(case_text)
        if found is None:
            raise PageError(404, "This link is not valid", "no such file")
        return DebtorAccess(found[0], uuid.UUID(case_text), found[1], case_text)

    def csrf_of(cookie: str) -> str:
        return hmac.new(
            secret.encode(), f"portal-csrf:{cookie}".encode(), hashlib.sha256
        ).hexdigest()[:32]

    def visit(request: Request, token: str) -> Visit | None:
        """The verified visit, or None when the second factor is still to be passed."""
        access = open_link(token)
        cookie = request.cookies.get(PORTAL_COOKIE, "")
        if not read_portal_cookie(secret, cookie, access.case_text):
            return None
        name = creditor_name(access.creditor_id)
        return Visit(access, token, name, setup_of(name), cookie)

    def language_of(request: Request, spoken: str | None) -> str:
        return pick_language(
            request.query_params.get("lang"), request.cookies.get(LANG_COOKIE), spoken
        )

    def render(
        request: Request, template: str, language: str, status: int = 200, **values: Any
    ) -> HTMLResponse:
        body = (
            environment(language)
            .get_template(f"portal/{template}")
            .render(path=request.url.path, languages=LANGUAGES, **values)
        )
        response = HTMLResponse(body, status_code=status)
        if "lang" in request.query_params and request.query_params["lang"] in LANGUAGES:
            response.set_cookie(
                LANG_COOKIE, language, max_age=365 * 86_400, path="/p/", httponly=True,
                samesite="lax", secure=secure,
            )  # fmt: skip
        return response

    def verified(request: Request, token: str) -> Visit:
        found = visit(request, token)
        if found is None:
            raise PageError(401, "Please confirm who you are", "second factor needed")
        return found

    async def form_of(request: Request, current: Visit) -> dict[str, str]:
        form = {k: str(v) for k, v in (await request.form()).items()}
        if not hmac.compare_digest(form.get("csrf", ""), csrf_of(current.cookie)):
            raise PageError(403, "This form has expired", "reload the page and try again")
        return form

    def overview(current: Visit, connection: Any = None) -> Overview:
        if connection is None:
            with engine.connect() as own:
                return overview(current, own)
        found = PortalStore(connection, current.access.creditor_id).overview(current.access.case_id)
        if found is None:
            raise PageError(404, "This link is not valid", "no such file")
        return found

    def common(current: Visit, view: Overview, request: Request) -> dict[str, Any]:
        language = language_of(request, view.debtor.language)
        return {
            "token": current.token, "view": view, "creditor": current.shown_name,
            "csrf": csrf_of(current.cookie), "lang": language,
            "profile": current.setup.profile if current.setup else None,
        }  # fmt: skip

    def event(connection: Any, access: DebtorAccess, kind: str, payload: Mapping[str, Any]) -> None:
        """A journey event of the visitor's case, inside the caller's transaction."""
        store = MessageStore(connection, access.creditor_id)
        key = store.writer.key
        store.add_event(key(access.case_id), key(access.debtor_id), kind, clock(), dict(payload))

    def rules(current: Visit) -> Any:
        return DEFAULT_RULES if current.setup is None else current.setup.limits.rules()

    # -- errors ---------------------------------------------------------------------------

    @app.exception_handler(PageError)
    async def page_error(request: Request, error: PageError) -> Response:
        if error.status == 401:  # back to the check, keeping the language
            token = request.path_params.get("token", "")
            return RedirectResponse(f"/p/{token}", status_code=303)
        language = pick_language(request.query_params.get("lang"), request.cookies.get(LANG_COOKIE))
        return render(
            request, "error.html", language, error.status, title=error.title, detail=error.detail
        )

    # -- the check ------------------------------------------------------------------------

    def factor(setup: CreditorSetup | None, view: Overview) -> str | None:
        """Which second factor this debtor is asked: the creditor's choice when the debtor
        has it on file, else the other; None when neither is known."""
        wanted = setup.portal.check if setup is not None else "postcode"
        have = {"postcode": view.debtor.postcode, "birth_year": view.debtor.birth_year}
        for choice in (wanted, "birth_year" if wanted == "postcode" else "postcode"):
            if have[choice]:
                return choice
        return None

    def check_page(request: Request, token: str) -> Response:
        access = open_link(token)
        name = creditor_name(access.creditor_id)
        with engine.begin() as connection:
            store = PortalStore(connection, access.creditor_id)
            view = store.overview(access.case_id)
            if view is None:
                raise PageError(404, "This link is not valid", "no such file")
            # Opening the link from a message is the journey's "clicked" event.
            event(connection, access, "message.clicked", {"via": "link"})
        language = language_of(request, view.debtor.language)
        return render(
            request, "check.html", language, token=token, creditor=display(name),
            factor=factor(setup_of(name), view), error=None,
        )  # fmt: skip

    def passes(asked: str | None, view: Overview, answer: str) -> bool:
        if asked == "postcode":
            given = "".join(answer.split()).upper()
            return hmac.compare_digest(given, "".join((view.debtor.postcode or "").split()).upper())
        if asked == "birth_year":
            return hmac.compare_digest(answer.strip(), str(view.debtor.birth_year))
        return True  # nothing on file to ask: the signed link alone opens the page

    def check(request: Request, token: str, answer: str) -> Response:
        access = open_link(token)
        name = creditor_name(access.creditor_id)
        now = clock()
        with engine.begin() as connection:
            store = PortalStore(connection, access.creditor_id)
            view = store.overview(access.case_id)
            if view is None:
                raise PageError(404, "This link is not valid", "no such file")
            state = store.check_state(access.case_id)
            language = language_of(request, view.debtor.language)
            asked = factor(setup_of(name), view)
            if state.locked_until is not None and state.locked_until > now:
                return render(
                    request, "check.html", language, 429, token=token, creditor=display(name),
                    factor=asked, error="locked", until=state.locked_until,
                )  # fmt: skip
            if not passes(asked, view, answer):
                state = store.record_failure(access.case_id, now, WINDOW, MAX_FAILURES, LOCK)
                error = "locked" if state.locked_until else "wrong"
                return render(
                    request, "check.html", language, 429 if state.locked_until else 400,
                    token=token, creditor=display(name), factor=asked, error=error,
                    left=MAX_FAILURES - state.failures, until=state.locked_until,
                )  # fmt: skip
            store.clear_failures(access.case_id)
        response = RedirectResponse(f"/p/{token}", status_code=303)
        response.set_cookie(
            PORTAL_COOKIE, portal_cookie_value(secret, access.case_text),
            max_age=SESSION_HOURS * 3600, path="/p/", httponly=True, samesite="lax",
            secure=secure,
        )  # fmt: skip
        return response

    @app.post("/p/{token}/check", response_class=HTMLResponse)
    async def check_route(token: str, request: Request) -> Response:
        form = await request.form()
        answer = str(form.get("answer", ""))[:32]
        return await run_in_threadpool(check, request, token, answer)

    # -- the main view ----------------------------------------------------------------------

    def transfer_of(current: Visit, view: Overview) -> EpcPayment | None:
        """The transfer that pays everything owed (for the QR code), if one can be made."""
        if view.paying_communication is None and len(view.open_invoices) > 1:
            # Several invoices and no message sent yet: the case gets its own
            # communication now, as a message would give it (once per case).
            with engine.begin() as connection:
                store = MessageStore(connection, current.access.creditor_id)
                facts = store.message_facts([store.writer.key(current.access.case_id)])
                view.case_communication = next(iter(facts.values())).structured_communication
        digits = view.paying_communication
        profile = current.setup.profile if current.setup else None
        if not digits or profile is None or view.total_minor <= 0:
            return None
        return belgian_transfer(
            name=profile.name, iban=profile.iban, bic=profile.bic,
            amount_minor=view.total_minor, communication=StructuredCommunication.parse(digits),
        )  # fmt: skip

    def pay_details(current: Visit, view: Overview) -> dict[str, Any]:
        transfer = transfer_of(current, view)
        if transfer is None or transfer.structured_reference is None:
            return {"communication": None, "payto": None}
        ogm = StructuredCommunication.parse(transfer.structured_reference).formatted
        owed = view.total_minor
        amount = f"{view.currency}:{owed // 100}.{owed % 100:02d}"
        payto = (
            f"payto://iban/{transfer.iban}?amount={amount}"
            f"&receiver-name={quote(transfer.name)}&message={quote(ogm)}"
        )
        return {
            "communication": ogm, "payto": payto, "iban": format_iban(transfer.iban),
            "beneficiary": transfer.name,
        }  # fmt: skip

    @app.get("/p/{token}/qr.svg")
    def qr_image(token: str, request: Request) -> Response:
        """The EPC QR code of what is owed, as its own image: the page stays light, and
        the browser keeps it (its address changes with the amount)."""
        current = verified(request, token)
        transfer = transfer_of(current, overview(current))
        if transfer is None:
            raise PageError(404, "Nothing to pay", "no transfer to draw")
        return Response(
            _qr(transfer), media_type="image/svg+xml",
            headers={"Cache-Control": "private, max-age=3600"},
        )  # fmt: skip

    def main_view(request: Request, token: str) -> Response:
        current = visit(request, token)
        if current is None:
            return check_page(request, token)
        with engine.connect() as connection:  # one connection for the whole view
            view = overview(current, connection)
            messages = chat_messages(current, view, connection)
        values = common(current, view, request)
        hub = app.state.chat_hub
        values.update(
            pay_details(current, view),
            psp=current.setup is not None and current.setup.psp is not None,
            agents_online=hub.agents_online(current.access.creditor_id),
            sla_hours=sla_hours(view), messages=messages, today=clock().date(),
        )  # fmt: skip
        return render(request, "page.html", values["lang"], **values)

    @app.get("/p/{token}", response_class=HTMLResponse)
    def page(token: str, request: Request) -> Response:
        return main_view(request, token)

    # -- paying online ----------------------------------------------------------------------

    def checkout(current: Visit) -> str:
        view = overview(current)
        owed = view.total_minor
        if owed <= 0:
            raise PageError(409, "Nothing to pay", "this file is paid")
        if current.setup is None or current.setup.psp is None:
            raise PageError(404, "No online payment", "pay by bank transfer")
        setting = current.setup.psp
        options: dict[str, Any] = {"api_key": setting.api_key.get_secret_value()}
        if setting.webhook_secret is not None:
            options["webhook_secret"] = setting.webhook_secret.get_secret_value()
        if setting.base_url:
            options["base_url"] = setting.base_url
        psp = psp_from_config(setting.kind, **options)
        base = settings.public_url.rstrip("/")
        try:
            made = psp.create_checkout(
                amount_minor=owed,
                currency=view.currency,
                description=f"{current.shown_name} {view.case_ref}",
                # One checkout per case, amount and day: a double tap reuses it.
                reference=f"{current.access.case_text}:{owed}:{clock():%Y%m%d}",
                redirect_url=f"{base}/p/{current.token}/paid",
                webhook_url=f"{base}/webhooks/psp/{quote(current.creditor, safe='')}",
                metadata={"case": current.access.case_text},
            )
        except PspError as error:
            raise PageError(
                502, "Online payment is not available now", "please try again later"
            ) from error
        finally:
            psp.close()
        return made.checkout_url

    @app.post("/p/{token}/pay")
    async def pay(token: str, request: Request) -> Response:
        current = await run_in_threadpool(verified, request, token)
        await form_of(request, current)
        url = await run_in_threadpool(checkout, current)
        return RedirectResponse(url, status_code=303)

    @app.get("/p/{token}/paid", response_class=HTMLResponse)
    def paid(token: str, request: Request) -> Response:
        current = verified(request, token)
        view = overview(current)
        values = common(current, view, request)
        return render(
            request, "done.html", values["lang"],
            done="paid" if view.total_minor <= 0 else "paying",
            context="payment", **values,
        )  # fmt: skip

    # -- promise, plan, dispute ---------------------------------------------------------------

    def promise_page(
        request: Request,
        token: str,
        error: str | None = None,
        form: Mapping[str, str] | None = None,
        status: int = 200,
    ) -> Response:
        current = verified(request, token)
        view = overview(current)
        values = common(current, view, request)
        horizon = clock().date() + dt.timedelta(days=rules(current).promise_max_days)
        return render(
            request, "promise.html", values["lang"], status, error=error, form=form or {},
            latest=horizon, today=clock().date(), **values,
        )  # fmt: skip

    @app.get("/p/{token}/promise", response_class=HTMLResponse)
    def promise_form(token: str, request: Request) -> Response:
        return promise_page(request, token)

    def parse_amount(text: str) -> int:
        cleaned = text.strip().replace("€", "").replace(" ", "").replace("\u202f", "")
        if "," in cleaned and "." in cleaned:
            cleaned = cleaned.replace(".", "").replace(",", ".")
        cleaned = cleaned.replace(",", ".")
        whole, _, cents = cleaned.partition(".")
        if not whole.isdigit() or (cents and (not cents.isdigit() or len(cents) > 2)):
            raise ValueError("amount")
        return int(whole) * 100 + int((cents or "0").ljust(2, "0"))

    def parse_day(text: str) -> dt.date:
        return dt.date.fromisoformat(text.strip())

    def promise(request: Request, token: str, form: dict[str, str]) -> Response:
        current = verified(request, token)
        view = overview(current)
        try:
            amount = parse_amount(form.get("amount", ""))
            day = parse_day(form.get("date", ""))
        except ValueError:
            return promise_page(request, token, "format", form, 422)
        try:
            make_promise(
                engine, current.access.creditor_id, view.case_ref, amount, day, clock(),
                source="debtor", actor="debtor", rules=rules(current),
            )  # fmt: skip
        except (CaseError, ArrangementError) as error:
            return promise_page(request, token, str(error), form, 422)
        values = common(current, overview(current), request)
        return render(
            request, "done.html", values["lang"], done="promise", context="promise",
            promised=(day, amount), **values,
        )  # fmt: skip

    @app.post("/p/{token}/promise", response_class=HTMLResponse)
    async def promise_route(token: str, request: Request) -> Response:
        current = await run_in_threadpool(verified, request, token)
        form = await form_of(request, current)
        return await run_in_threadpool(promise, request, token, form)

    def plan_values(current: Visit, view: Overview, form: Mapping[str, str]) -> dict[str, Any]:
        limits = rules(current).plan
        today = clock().date()
        options = propose_plans(view.total_minor, today, limits) if view.total_minor > 0 else []
        counts = sorted({len(o) for o in options})
        chosen = form.get("count", "")
        schedule = None
        error = None
        if chosen:
            try:
                schedule = plan_schedule(
                    view.total_minor, int(chosen), today + dt.timedelta(days=7), today=today,
                    limits=limits,
                )  # fmt: skip
            except (ValueError, ArrangementError) as problem:
                error = str(problem)
        return {"counts": counts, "chosen": chosen, "schedule": schedule, "error": error}

    @app.get("/p/{token}/plan", response_class=HTMLResponse)
    def plan_form(token: str, request: Request) -> Response:
        current = verified(request, token)
        view = overview(current)
        values = common(current, view, request)
        values.update(plan_values(current, view, dict(request.query_params)))
        # htmx asks only the schedule when the count changes (a boosted link: the page).
        fragment = request.headers.get("HX-Target") == "schedule"
        template = "plan_schedule.html" if fragment else "plan.html"
        return render(request, template, values["lang"], **values)

    def plan(request: Request, token: str, form: dict[str, str]) -> Response:
        current = verified(request, token)
        view = overview(current)
        values = common(current, view, request)
        try:
            count = int(form.get("count", ""))
            made = create_plan(
                engine, current.access.creditor_id, view.case_ref, count,
                clock().date() + dt.timedelta(days=7), clock(), source="debtor", actor="debtor",
                rules=rules(current),
            )  # fmt: skip
        except (ValueError, CaseError, ArrangementError) as error:
            values.update(plan_values(current, view, form))
            values["error"] = str(error)
            return render(request, "plan.html", values["lang"], 422, **values)
        profile = current.setup.profile if current.setup else None
        qrs = [_qr(t) for t in made.transfers(profile.profile())] if profile else []
        values = common(current, overview(current), request)
        return render(
            request, "done.html", values["lang"], done="plan", context="plan", made=made,
            qrs=qrs, **values,
        )  # fmt: skip

    @app.post("/p/{token}/plan", response_class=HTMLResponse)
    async def plan_route(token: str, request: Request) -> Response:
        current = await run_in_threadpool(verified, request, token)
        form = await form_of(request, current)
        return await run_in_threadpool(plan, request, token, form)

    def dispute_page(
        request: Request,
        token: str,
        error: str | None = None,
        form: Mapping[str, str] | None = None,
        status: int = 200,
    ) -> Response:
        current = verified(request, token)
        values = common(current, overview(current), request)
        return render(
            request, "dispute.html", values["lang"], status, error=error, form=form or {},
            reasons=DISPUTE_REASONS, **values,
        )  # fmt: skip

    @app.get("/p/{token}/dispute", response_class=HTMLResponse)
    def dispute_form(token: str, request: Request) -> Response:
        return dispute_page(request, token)

    def dispute(request: Request, token: str, form: dict[str, str]) -> Response:
        current = verified(request, token)
        view = overview(current)
        reason = form.get("reason", "")
        text = form.get("evidence", "").strip()[:_MAX_TEXT] or None
        if reason not in DISPUTE_REASONS:
            return dispute_page(request, token, "reason", form, 422)
        try:
            open_dispute(
                engine, current.access.creditor_id, view.case_ref, reason, text, clock(),
                source="debtor", actor="debtor",
            )  # fmt: skip
        except (CaseError, ArrangementError) as error:
            return dispute_page(request, token, str(error), form, 422)
        values = common(current, overview(current), request)
        return render(
            request, "done.html", values["lang"], done="dispute", context="dispute", **values
        )

    @app.post("/p/{token}/dispute", response_class=HTMLResponse)
    async def dispute_route(token: str, request: Request) -> Response:
        current = await run_in_threadpool(verified, request, token)
        form = await form_of(request, current)
        return await run_in_threadpool(dispute, request, token, form)

    # -- preferences, privacy, survey ---------------------------------------------------------

    @app.get("/p/{token}/preferences", response_class=HTMLResponse)
    def preferences_form(token: str, request: Request) -> Response:
        current = verified(request, token)
        values = common(current, overview(current), request)
        return render(
            request, "preferences.html", values["lang"], saved=False, channels=CHANNELS, **values
        )

    def preferences(
        request: Request, token: str, form: dict[str, str], chosen: set[str]
    ) -> Response:
        current = verified(request, token)
        language = form.get("language", "")
        preferred = form.get("preferred_channel") or None
        remind = {"yes": True, "no": False}.get(form.get("remind", ""))
        if language not in LANGUAGES or (preferred is not None and preferred not in CHANNELS):
            raise PageError(422, "Please check the form", "unknown language or channel")
        opted_out = {c for c in CHANNELS if c not in chosen}
        with engine.begin() as connection:
            PortalStore(connection, current.access.creditor_id).set_preferences(
                current.access.debtor_id, language=language, preferred_channel=preferred,
                remind_before_due=remind, opted_out=opted_out, now=clock(),
            )  # fmt: skip
            event(
                connection, current.access, "preferences.changed",
                {"language": language, "preferred_channel": preferred, "remind_before_due": remind,
                 "opted_out": sorted(opted_out)},
            )  # fmt: skip
        values = common(current, overview(current), request)
        values["lang"] = language
        response = render(
            request, "preferences.html", language, saved=True, channels=CHANNELS, **values
        )
        response.delete_cookie(LANG_COOKIE, path="/p/")
        return response

    @app.post("/p/{token}/preferences", response_class=HTMLResponse)
    async def preferences_route(token: str, request: Request) -> Response:
        current = await run_in_threadpool(verified, request, token)
        form = await form_of(request, current)
        chosen = {str(v) for v in (await request.form()).getlist("channels")}
        return await run_in_threadpool(preferences, request, token, form, chosen)

    def persona_of(view: Overview) -> Persona | None:
        return catalog().personas.get(view.persona or "")

    def privacy_values(current: Visit, view: Overview) -> dict[str, Any]:
        return {"persona": persona_of(view)}

    @app.get("/p/{token}/privacy", response_class=HTMLResponse)
    def privacy_page(token: str, request: Request) -> Response:
        current = verified(request, token)
        view = overview(current)
        values = common(current, view, request)
        values.update(privacy_values(current, view))
        return render(request, "privacy.html", values["lang"], saved=False, **values)

    def object_to_profiling(request: Request, token: str, objects: bool) -> Response:
        from parcours.runtime.personas import record_objection

        current = verified(request, token)
        with engine.begin() as connection:
            record_objection(
                connection, current.access.creditor_id, current.access.debtor_id, clock(), objects
            )
            event(
                connection, current.access, "profiling.objection",
                {"objects": objects, "via": "page"},
            )  # fmt: skip
        view = overview(current)
        values = common(current, view, request)
        values.update(privacy_values(current, view))
        return render(request, "privacy.html", values["lang"], saved=True, **values)

    @app.post("/p/{token}/privacy", response_class=HTMLResponse)
    async def privacy_route(token: str, request: Request) -> Response:
        current = await run_in_threadpool(verified, request, token)
        form = await form_of(request, current)
        return await run_in_threadpool(
            object_to_profiling, request, token, form.get("objects") == "yes"
        )

    @app.get("/p/{token}/survey", response_class=HTMLResponse)
    def survey_form(token: str, request: Request) -> Response:
        current = verified(request, token)
        values = common(current, overview(current), request)
        return render(
            request, "survey.html", values["lang"], survey=catalog().survey, answers={},
            missing=[], **values,
        )  # fmt: skip

    def survey(request: Request, token: str, form: dict[str, str]) -> Response:
        from parcours.personas.survey import score_answers
        from parcours.store.personas import PersonaStore, StoredResponse

        current = verified(request, token)
        questions = catalog().survey.questions
        answers = {q.key: form[q.key] for q in questions if form.get(q.key)}
        values = common(current, overview(current), request)
        try:
            score = score_answers(catalog(), answers)
        except ValueError:
            answers = {}
            score = None
        if score is None or not answers:
            missing = [q.key for q in questions if q.key not in answers]
            return render(
                request, "survey.html", values["lang"], 422, survey=catalog().survey,
                answers=answers, missing=missing, **values,
            )  # fmt: skip
        now = clock()
        version = catalog().survey.version
        with engine.begin() as connection:
            store = PersonaStore(connection, current.access.creditor_id)
            store.add_responses(
                [StoredResponse(store.writer.key(current.access.debtor_id), version, answers,
                                score.persona, score.confidence, now)],
                now, source="page",
            )  # fmt: skip
            event(
                connection, current.access, "survey.answered",
                {"version": catalog().survey.version, "questions": len(answers)},
            )  # fmt: skip
        return render(request, "done.html", values["lang"], done="survey", context="page", **values)

    @app.post("/p/{token}/survey", response_class=HTMLResponse)
    async def survey_route(token: str, request: Request) -> Response:
        current = await run_in_threadpool(verified, request, token)
        form = await form_of(request, current)
        return await run_in_threadpool(survey, request, token, form)

    # -- satisfaction -------------------------------------------------------------------------

    def csat(request: Request, token: str, form: dict[str, str]) -> Response:
        current = verified(request, token)
        view = overview(current)
        context = form.get("context", "")
        try:
            score = int(form.get("score", ""))
        except ValueError:
            score = 0
        if context not in CSAT_CONTEXTS or not 1 <= score <= 5:
            raise PageError(422, "Please choose a score from 1 to 5", "score")
        comment = form.get("comment", "").strip()[:_MAX_TEXT] or None
        with engine.begin() as connection:
            PortalStore(connection, current.access.creditor_id).add_csat(
                current.access.case_id, context, score, comment, view.persona, view.journey, clock()
            )
            event(
                connection, current.access, "csat.answered",
                {"score": score, "context": context},
            )  # fmt: skip
        values = common(current, view, request)
        return render(request, "done.html", values["lang"], done="thanks", context=None, **values)

    @app.post("/p/{token}/csat", response_class=HTMLResponse)
    async def csat_route(token: str, request: Request) -> Response:
        current = await run_in_threadpool(verified, request, token)
        form = await form_of(request, current)
        return await run_in_threadpool(csat, request, token, form)

    # -- chat ---------------------------------------------------------------------------------

    def sla_hours(view: Overview) -> int:
        """The answer time promised to this debtor: the same the conversation gets."""
        from parcours.runtime.chat import answer_hours

        return answer_hours(view.assigned_persona, catalog(), settings.default_persona)

    def chat_messages(current: Visit, view: Overview, connection: Any) -> list[Any]:
        from parcours.store.chat import ChatStore

        if view.conversation_id is None:
            return []
        return ChatStore(connection, current.access.creditor_id).messages(view.conversation_id)

    @app.get("/p/{token}/chat", response_class=HTMLResponse)
    def chat_page(token: str, request: Request) -> Response:
        current = verified(request, token)
        with engine.connect() as connection:
            view = overview(current, connection)
            messages = chat_messages(current, view, connection)
        values = common(current, view, request)
        hub = app.state.chat_hub
        return render(
            request, "chat.html", values["lang"], messages=messages,
            agents_online=hub.agents_online(current.access.creditor_id),
            sla_hours=sla_hours(view), **values,
        )  # fmt: skip

    @app.post("/p/{token}/chat")
    async def chat_post(token: str, request: Request) -> Response:
        from parcours.web.chat import TooFast, post_debtor

        current = await run_in_threadpool(verified, request, token)
        form = await form_of(request, current)
        try:
            await post_debtor(
                app.state.chat_hub, engine, current.access, form.get("body", ""), clock()
            )
        except TooFast as error:
            raise PageError(429, "Too many messages", str(error)) from error
        except ValueError as error:
            raise PageError(422, "Your message could not be sent", str(error)) from error
        return RedirectResponse(f"/p/{token}/chat#latest", status_code=303)

    @app.websocket("/p/{token}/chat/ws")
    async def chat_socket(websocket: WebSocket, token: str) -> None:
        from parcours.web.chat import debtor_socket

        try:
            access = await run_in_threadpool(open_link, token)
        except PageError:
            await websocket.close(code=4404)
            return
        if not read_portal_cookie(secret, websocket.cookies.get(PORTAL_COOKIE), access.case_text):
            await websocket.close(code=4401)
            return
        await debtor_socket(websocket, app.state.chat_hub, engine, access)

    # -- opting out (no second factor: one click from any message must work) ----------------

    def opt_out_access(token: str) -> DebtorAccess:
        try:
            case_text = links.read("opt-out", token, clock())
        except LinkError as error:
            raise PageError(410 if "expired" in str(error) else 404, "This link is not valid",
                            str(error)) from error  # fmt: skip
        with engine.connect() as connection:
            found = locate(connection, uuid.UUID(case_text))
        if found is None:
            raise PageError(404, "This link is not valid", "no such file")
        return DebtorAccess(found[0], uuid.UUID(case_text), found[1], case_text)

    def spoken(access: DebtorAccess) -> str | None:
        with engine.connect() as connection:
            view = PortalStore(connection, access.creditor_id).overview(access.case_id)
        return None if view is None else view.debtor.language

    @app.get("/o/{token}", response_class=HTMLResponse)
    def opt_out_form(token: str, request: Request) -> Response:
        access = opt_out_access(token)
        language = language_of(request, spoken(access))
        shown = display(creditor_name(access.creditor_id))
        return render(request, "optout.html", language, creditor=shown, done=None)

    def opt_out(request: Request, token: str, channel: str) -> Response:
        access = opt_out_access(token)
        with engine.begin() as connection:
            store = MessageStore(connection, access.creditor_id)
            store.opt_out(store.writer.key(access.debtor_id), CONSENT_COLUMNS[channel], clock())
            event(connection, access, "message.opted_out", {"channel": channel})
        language = language_of(request, spoken(access))
        shown = display(creditor_name(access.creditor_id))
        return render(request, "optout.html", language, creditor=shown, done=channel)

    @app.post("/o/{token}", response_class=HTMLResponse)
    async def opt_out_route(token: str, request: Request) -> Response:
        form = await request.form()
        # RFC 8058: the one-click POST of an e-mail client carries only this field.
        one_click = form.get("List-Unsubscribe") == "One-Click"
        channel = "email" if one_click else str(form.get("channel", ""))
        if channel not in CONSENT_COLUMNS:
            raise HTTPException(400, "choose email, sms or letter")
        return await run_in_threadpool(opt_out, request, token, channel)
