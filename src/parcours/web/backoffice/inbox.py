"""The agents' inbox: conversations by answer deadline, one conversation beside its case,
the reply (plain form, or the WebSocket when scripts run) and the quick actions.

Every route reads only the signed-in user's creditor: another creditor's conversation is
a 404, as is one that does not exist. Every view and action is audited (`user:{email}`,
`case:{ref}`, refs and outcomes only). A refused action shows the page again with the
reason beside the form and what was typed still in it.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable
from functools import partial
from typing import Annotated, Any, Final
from urllib.parse import urlsplit

from fastapi import APIRouter, Depends, Request, WebSocket
from fastapi.responses import RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from parcours.domain.arrangements import plan_schedule
from parcours.domain.money import parse_amount
from parcours.runtime.arrangements import (
    DEFAULT_RULES,
    DISPUTE_REASONS,
    create_plan,
    make_promise,
    open_dispute,
    resolve_dispute,
)
from parcours.store.api import format_minor
from parcours.store.chat import ChatStore, Conversation
from parcours.store.messages import MessageStore
from parcours.web.backoffice.auth import (
    ACT,
    PATH,
    READ,
    SESSION_COOKIE,
    BackOffice,
    CurrentUser,
    Refused,
    back_office,
    form_of,
    office_of,
    require_user,
)
from parcours.web.backoffice.cases import PAUSED_BY_AGENT, CaseSheet, case_ref, read_case
from parcours.web.backoffice.views import parse_date

__all__ = ["router"]

router = APIRouter(prefix=PATH)

Reader = Annotated[CurrentUser, Depends(require_user(*READ))]
Actor = Annotated[CurrentUser, Depends(require_user(*ACT))]

BREACH_WINDOW: Final = dt.timedelta(days=7)
QUEUE_LIMIT: Final = 200
DONE: Final = {
    "reply": "Reply sent.",
    "promise": "Promise recorded.",
    "plan": "Payment plan created.",
    "dispute": "Dispute opened: collection pauses until it is resolved.",
    "resolve": "Dispute resolved.",
    "pause": "Collection paused.",
    "resume": "Collection resumed.",
}
EVERY: Final = ("month", "fortnight", "week")
_MAX_NOTE: Final = 2000


def _conversation_id(text: str) -> uuid.UUID:
    try:
        return uuid.UUID(text)
    except ValueError:
        raise Refused(404, "No such conversation") from None


# -- the inbox -------------------------------------------------------------------------


@router.get("/")
def home() -> Response:
    return RedirectResponse(f"{PATH}/inbox", status_code=303)


@router.get("/inbox")
def inbox(request: Request, user: Reader) -> Response:
    office = office_of(request)
    now = office.now()
    with office.engine.connect() as connection:
        chat = ChatStore(connection, user.creditor_id)
        queue = chat.queue(now, limit=QUEUE_LIMIT)
        breaches = chat.breaches(now - BREACH_WINDOW, now)
    office.audit(user, "inbox.viewed", "inbox", {"conversations": len(queue)})
    return office.render(
        request, "inbox.html", nav="inbox", user=user, queue=queue, now=now, breaches=breaches,
        overdue=sum(1 for item in queue if item.breached),
        waiting=sum(1 for item in queue if item.waiting),
        window_days=BREACH_WINDOW.days, catalog=office.catalog(),
        agents_online=office.hub.agents_online(user.creditor_id),
    )  # fmt: skip


# -- one conversation ------------------------------------------------------------------


def _load(
    office: BackOffice, user: CurrentUser, conversation_id: uuid.UUID
) -> tuple[Conversation, list[Any], CaseSheet]:
    with office.engine.connect() as connection:
        chat = ChatStore(connection, user.creditor_id)
        conversation = chat.conversation(conversation_id)
        if conversation is None:
            raise Refused(404, "No such conversation")
        messages = chat.messages(conversation_id)
        sheet = read_case(
            connection, user.creditor_id, conversation.case_id, office.catalog(),
            office.settings.default_persona,
        )  # fmt: skip
    if sheet is None:
        raise Refused(404, "No such conversation")
    return conversation, messages, sheet


def _case_ref_of(office: BackOffice, creditor_id: uuid.UUID, key: uuid.UUID | None) -> str | None:
    """The case ref of one of the creditor's conversations; None when it is not one."""
    if key is None:
        return None
    with office.engine.connect() as connection:
        found = ChatStore(connection, creditor_id).conversation(key)
        return None if found is None else case_ref(connection, creditor_id, found.case_id)


def _page(
    request: Request,
    user: CurrentUser,
    conversation_id: uuid.UUID,
    *,
    status: int = 200,
    errors: dict[str, str] | None = None,
    values: dict[str, dict[str, str]] | None = None,
    preview: list[dict[str, str]] | None = None,
    audit: bool = True,
) -> Response:
    office = office_of(request)
    conversation, messages, sheet = _load(office, user, conversation_id)
    if audit:
        office.audit(user, "conversation.viewed", f"case:{sheet.case_ref}")
    done = DONE.get(request.query_params.get("done", ""))
    return office.render(
        request, "conversation.html", status, nav="inbox", user=user, conversation=conversation,
        messages=messages, sheet=sheet, now=office.now(), errors=errors or {},
        values=values or {}, preview=preview, done=done, reasons=DISPUTE_REASONS,
        every=EVERY, agents_online=office.hub.agents_online(user.creditor_id),
    )  # fmt: skip


@router.get("/inbox/{conversation_id}")
def conversation(conversation_id: str, request: Request, user: Reader) -> Response:
    return _page(request, user, _conversation_id(conversation_id))


@router.post("/inbox/{conversation_id}/reply")
async def reply(conversation_id: str, request: Request, user: Actor) -> Response:
    from parcours.web.chat import post_agent

    office = office_of(request)
    key = _conversation_id(conversation_id)
    body = str((await form_of(request)).get("body", ""))
    case_ref = await run_in_threadpool(_case_ref_of, office, user.creditor_id, key)
    if case_ref is None:
        raise Refused(404, "No such conversation")
    subject = f"case:{case_ref}"
    try:
        posted = await post_agent(
            office.hub, office.engine, user.creditor_id, key, user.id, body, office.now()
        )
    except (ValueError, LookupError) as error:
        problem = str(error)
        await run_in_threadpool(office.audit, user, "chat.reply_refused", subject, {})
        return await run_in_threadpool(
            partial(
                _page, request, user, key, status=400, errors={"reply": problem},
                values={"reply": {"body": body}}, audit=False,
            )
        )  # fmt: skip
    await run_in_threadpool(
        office.audit, user, "chat.replied", subject,
        {"message": str(posted.message.id), "late": posted.message.late},
    )  # fmt: skip
    return RedirectResponse(f"{PATH}/inbox/{key}?done=reply#messages", status_code=303)


# -- quick actions ---------------------------------------------------------------------


def _fields(form: Any, names: tuple[str, ...]) -> dict[str, str]:
    return {name: str(form.get(name, "")).strip()[:_MAX_NOTE] for name in names}


async def _act(
    request: Request,
    user: CurrentUser,
    conversation_id: str,
    action: str,
    names: tuple[str, ...],
    run: Callable[[BackOffice, CaseSheet, dict[str, str]], dict[str, Any]],
) -> Response:
    """Run a quick action on the conversation's case; on a refusal show the page again
    with the reason and the form as it was typed."""
    office = office_of(request)
    key = _conversation_id(conversation_id)
    values = _fields(await form_of(request), names)

    def attempt() -> Response:
        _, _, sheet = _load(office, user, key)
        subject = f"case:{sheet.case_ref}"
        try:
            details = run(office, sheet, values)
        except ValueError as error:
            office.audit(user, f"case.{action}_refused", subject, {})
            return _page(
                request, user, key, status=400, errors={action: str(error)},
                values={action: values}, audit=False,
            )  # fmt: skip
        office.audit(user, f"case.{action}", subject, details)
        return RedirectResponse(f"{PATH}/inbox/{key}?done={action}", status_code=303)

    return await run_in_threadpool(attempt)


def _currency(sheet: CaseSheet, office: BackOffice) -> str:
    return sheet.currency or office.settings.default_currency


@router.post("/inbox/{conversation_id}/promise")
async def promise(conversation_id: str, request: Request, user: Actor) -> Response:
    def run(office: BackOffice, sheet: CaseSheet, values: dict[str, str]) -> dict[str, Any]:
        amount = parse_amount(values["amount"], _currency(sheet, office))
        due_on = parse_date(values["due_on"], "promise date")
        make_promise(
            office.engine, user.creditor_id, sheet.case_ref, amount, due_on, office.now(),
            source="agent", actor=user.actor,
        )  # fmt: skip
        return {"amount_minor": amount, "due_on": due_on.isoformat()}

    return await _act(request, user, conversation_id, "promise", ("amount", "due_on"), run)


def _count(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise ValueError("instalments: give a whole number, e.g. 3") from None


@router.post("/inbox/{conversation_id}/plan")
async def plan(conversation_id: str, request: Request, user: Actor) -> Response:
    office = office_of(request)
    names = ("count", "first_on", "every", "step")
    form = await form_of(request)
    if str(form.get("step", "")) == "preview":
        key = _conversation_id(conversation_id)
        values = _fields(form, names)

        def show() -> Response:
            _, _, sheet = _load(office, user, key)
            try:
                rows = _schedule(office, sheet, values)
            except ValueError as error:
                return _page(
                    request, user, key, status=400, errors={"plan": str(error)},
                    values={"plan": values}, audit=False,
                )  # fmt: skip
            return _page(request, user, key, values={"plan": values}, preview=rows, audit=False)

        return await run_in_threadpool(show)

    def run(office: BackOffice, sheet: CaseSheet, values: dict[str, str]) -> dict[str, Any]:
        every = _every(values["every"])
        made = create_plan(
            office.engine, user.creditor_id, sheet.case_ref, _count(values["count"]),
            parse_date(values["first_on"], "first instalment date"), office.now(),
            source="agent", actor=user.actor, every=every,
        )  # fmt: skip
        return {"plan": made.plan_id, "instalments": len(made.instalments)}

    return await _act(request, user, conversation_id, "plan", names, run)


def _every(text: str) -> Any:
    if text not in EVERY:
        raise ValueError(f"frequency: choose {', '.join(EVERY)}")
    return text


def _schedule(office: BackOffice, sheet: CaseSheet, values: dict[str, str]) -> list[dict[str, str]]:
    currency = _currency(sheet, office)
    instalments = plan_schedule(
        sheet.balance_minor, _count(values["count"]),
        parse_date(values["first_on"], "first instalment date"), today=office.now().date(),
        every=_every(values["every"]), limits=DEFAULT_RULES.plan,
    )  # fmt: skip
    return [
        {
            "number": str(i.number),
            "due_on": i.due_on.isoformat(),
            "amount": f"{format_minor(i.amount_minor, currency)} {currency}",
        }
        for i in instalments
    ]


@router.post("/inbox/{conversation_id}/dispute")
async def dispute(conversation_id: str, request: Request, user: Actor) -> Response:
    def run(office: BackOffice, sheet: CaseSheet, values: dict[str, str]) -> dict[str, Any]:
        opened = open_dispute(
            office.engine, user.creditor_id, sheet.case_ref, values["reason"],
            values["note"] or None, office.now(), source="agent", actor=user.actor,
        )  # fmt: skip
        return {"dispute": opened, "reason": values["reason"]}

    return await _act(request, user, conversation_id, "dispute", ("reason", "note"), run)


@router.post("/inbox/{conversation_id}/resolve")
async def resolve(conversation_id: str, request: Request, user: Actor) -> Response:
    def run(office: BackOffice, sheet: CaseSheet, values: dict[str, str]) -> dict[str, Any]:
        outcome = values["outcome"]
        if outcome not in ("upheld", "rejected"):
            raise ValueError("outcome: choose upheld or rejected")
        adjustment = (
            parse_amount(values["adjustment"], _currency(sheet, office))
            if values["adjustment"]
            else None
        )
        resolve_dispute(
            office.engine, user.creditor_id, sheet.case_ref, outcome, office.now(),  # type: ignore[arg-type]
            actor=user.actor, note=values["note"] or None, adjustment_minor=adjustment,
        )  # fmt: skip
        details: dict[str, Any] = {"outcome": outcome}
        if adjustment is not None:
            details["adjustment_minor"] = adjustment
        return details

    names = ("outcome", "adjustment", "note")
    return await _act(request, user, conversation_id, "resolve", names, run)


def _record_hold(office: BackOffice, user: CurrentUser, sheet: CaseSheet, kind: str) -> None:
    with office.engine.begin() as connection:
        store = MessageStore(connection, user.creditor_id)
        case, debtor = (
            (sheet.case_id.bytes, sheet.debtor_id.bytes)
            if store.sqlite
            else (str(sheet.case_id), str(sheet.debtor_id))
        )
        store.add_event(case, debtor, kind, office.now(), {"reason": PAUSED_BY_AGENT})


@router.post("/inbox/{conversation_id}/pause")
async def pause(conversation_id: str, request: Request, user: Actor) -> Response:
    def run(office: BackOffice, sheet: CaseSheet, values: dict[str, str]) -> dict[str, Any]:
        if sheet.hold is not None:
            raise ValueError("collection is already paused on this case")
        _record_hold(office, user, sheet, "legal_hold.set")
        return {}

    return await _act(request, user, conversation_id, "pause", (), run)


@router.post("/inbox/{conversation_id}/resume")
async def resume(conversation_id: str, request: Request, user: Actor) -> Response:
    def run(office: BackOffice, sheet: CaseSheet, values: dict[str, str]) -> dict[str, Any]:
        if sheet.hold is None:
            raise ValueError("collection is not paused on this case")
        if sheet.hold != "agent":
            raise ValueError(
                "this case is on a legal hold set by the creditor: only they can lift it"
            )
        _record_hold(office, user, sheet, "legal_hold.lifted")
        return {}

    return await _act(request, user, conversation_id, "resume", (), run)


# -- live replies ----------------------------------------------------------------------


def _same_origin(websocket: WebSocket, public_url: str) -> bool:
    """A browser's socket must come from a page of this site (no cross-site hijacking);
    clients that send no Origin are not browsers and carry no victim's cookie."""
    origin = websocket.headers.get("origin")
    if origin is None:
        return True
    netloc = urlsplit(origin).netloc.lower()
    host = websocket.headers.get("host", "").lower()
    return netloc in (host, urlsplit(public_url).netloc.lower())


@router.websocket("/ws/{conversation_id}")
async def agent_ws(websocket: WebSocket, conversation_id: str) -> None:
    """Authorise the agent's socket (4401: not signed in; 4403: not allowed, or not a
    conversation of their creditor), then hand it to the chat loop."""
    from parcours.web.chat import agent_socket

    office = back_office(websocket.app)
    token = websocket.cookies.get(SESSION_COOKIE, "")
    found = await run_in_threadpool(office.signed_in, token) if token else None
    if found is None:
        await websocket.accept()
        await websocket.close(code=4401, reason="sign in first")
        return
    user = found.user
    try:
        key = uuid.UUID(conversation_id)
    except ValueError:
        key = None

    allowed = user.role in ACT and key is not None
    case_ref = (
        await run_in_threadpool(_case_ref_of, office, user.creditor_id, key) if allowed else None
    )
    if case_ref is None or key is None or not _same_origin(websocket, office.settings.public_url):
        await websocket.accept()
        await websocket.close(code=4403, reason="not allowed")
        return
    current = CurrentUser(user.id, user.creditor_id, user.email, user.name, user.role, "")
    await run_in_threadpool(office.audit, current, "chat.joined", f"case:{case_ref}", {})

    async def audited(_: Any) -> None:  # each message, as the plain form's replies are
        await run_in_threadpool(office.audit, current, "chat.replied", f"case:{case_ref}", {})

    await agent_socket(
        websocket, office.hub, office.engine, user.creditor_id, user.id, key, on_posted=audited
    )
