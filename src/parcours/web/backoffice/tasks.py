"""Phone tasks: the calls journeys ask for, and the disposition the agent records.

The list shows case references and scripts only; the number to call and the debtor's
name appear on the task's own page (an audited view), and only when the debtor has not
opted out of calls.
"""

from __future__ import annotations

from typing import Annotated, Any, Final

from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from parcours.domain.money import parse_amount
from parcours.runtime.tasks import Disposition, complete_task, due_tasks
from parcours.store.chat import ChatStore
from parcours.store.payments import PaymentStore
from parcours.web.backoffice.auth import (
    ACT,
    PATH,
    READ,
    BackOffice,
    CurrentUser,
    Refused,
    form_of,
    office_of,
    require_user,
)
from parcours.web.backoffice.views import parse_date

__all__ = ["DISPOSITIONS", "router"]

router = APIRouter(prefix=PATH)

Reader = Annotated[CurrentUser, Depends(require_user(*READ))]
Actor = Annotated[CurrentUser, Depends(require_user(*ACT))]

TASK_LIMIT: Final = 200
DISPOSITIONS: Final = {
    Disposition.RIGHT_PARTY.value: "Spoke with the debtor",
    Disposition.NO_ANSWER.value: "No answer",
    Disposition.WRONG_NUMBER.value: "Wrong number",
    Disposition.PROMISE.value: "Promise to pay",
    Disposition.DISPUTE.value: "Debtor disputes the debt",
}
_ATTEMPT_MAX: Final = 64


def _task(office: BackOffice, user: CurrentUser, attempt_id: str) -> dict[str, Any]:
    """The open task with its case, the debtor's name and the number to call."""
    if not attempt_id or len(attempt_id) > _ATTEMPT_MAX:
        raise Refused(404, "No such task")
    with office.engine.connect() as connection:
        payments = PaymentStore(connection, user.creditor_id)
        found = payments.task(attempt_id)
        if found is None:
            raise Refused(404, "No such task")
        _, case, debtor, channel, script, status = found
        info = payments.cases([case]).get(case)
        reach = ChatStore(connection, user.creditor_id).reach(debtor)
    if info is None:
        raise Refused(404, "No such task")
    return {
        "attempt_id": attempt_id, "case_ref": info.ref, "name": info.name,
        "currency": info.currency or office.settings.default_currency,
        "phone": reach.mobile if reach else None,
        "language": reach.language if reach else None, "channel": channel, "script": script,
        "status": status, "open": status in ("queued", "delayed"),
    }  # fmt: skip


@router.get("/tasks")
def tasks(request: Request, user: Reader) -> Response:
    office = office_of(request)
    now = office.now()
    with office.engine.connect() as connection:
        found = due_tasks(connection, user.creditor_id, now, TASK_LIMIT)
    office.audit(user, "tasks.viewed", "tasks", {"tasks": len(found)})
    rows = [
        {
            "attempt_id": attempt, "case_ref": ref, "channel": channel, "script": script,
            "journey": journey, "created_at": created,
        }
        for attempt, ref, channel, script, journey, created in found
    ]  # fmt: skip
    done = request.query_params.get("done") == "task"
    return office.render(request, "tasks.html", nav="tasks", user=user, tasks=rows, done=done)


def _task_page(
    request: Request,
    user: CurrentUser,
    task: dict[str, Any],
    *,
    status: int = 200,
    error: str = "",
    values: dict[str, str] | None = None,
) -> Response:
    office = office_of(request)
    return office.render(
        request, "task.html", status, nav="tasks", user=user, task=task, error=error,
        values=values or {}, dispositions=DISPOSITIONS,
    )  # fmt: skip


@router.get("/tasks/{attempt_id}")
def task(attempt_id: str, request: Request, user: Reader) -> Response:
    office = office_of(request)
    found = _task(office, user, attempt_id)
    office.audit(user, "task.viewed", f"case:{found['case_ref']}", {"task": attempt_id})
    return _task_page(request, user, found)


@router.post("/tasks/{attempt_id}")
async def complete(attempt_id: str, request: Request, user: Actor) -> Response:
    office = office_of(request)
    form = await form_of(request)
    values = {k: str(form.get(k, "")).strip()[:100] for k in ("disposition", "amount", "due_on")}

    def attempt() -> Response:
        found = _task(office, user, attempt_id)
        subject = f"case:{found['case_ref']}"
        try:
            if values["disposition"] not in DISPOSITIONS:
                raise ValueError("disposition: choose how the call went")
            disposition = Disposition(values["disposition"])
            promise = None
            if disposition is Disposition.PROMISE:
                promise = (
                    parse_amount(values["amount"], found["currency"]),
                    found["currency"],
                    parse_date(values["due_on"], "promise date"),
                )
            complete_task(
                office.engine, user.creditor_id, attempt_id, disposition, office.now(),
                promise=promise,
            )  # fmt: skip
        except ValueError as error:
            office.audit(user, "task.refused", subject, {"task": attempt_id})
            return _task_page(request, user, found, status=400, error=str(error), values=values)
        office.audit(
            user, "task.completed", subject,
            {"task": attempt_id, "disposition": disposition.value},
        )  # fmt: skip
        return RedirectResponse(f"{PATH}/tasks?done=task", status_code=303)

    return await run_in_threadpool(attempt)
