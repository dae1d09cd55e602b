"""The integrator API, `/api/v1`: debtors and invoices in, payments and case events in,
case state, timelines and the unmatched queue out.

- Every request carries `Authorization: Bearer pk_live_…`, a key of one creditor with
  scopes (`read`, `write`, `payments`); every query is filtered on that creditor.
- POSTs take an `Idempotency-Key` header: the same key with the same body replays the
  stored response for 24 hours, with another body it is refused (422).
- Errors are RFC 9457 problem details (`application/problem+json`) whose `errors` name
  each field at fault; they never quote personal data (names, e-mails, phones…).
- Listings page with opaque cursors: `?cursor=…&limit=…`, `next_cursor` null at the end.

The app holds an `ApiContext` at `app.state.api` (engine, settings, key verifier, clock):
`mount_api(app, engine, settings)` sets it, includes `api_router` and installs the problem
handlers; `build_api_app(engine, settings)` makes an app serving only the API.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import uuid
import zoneinfo
from collections.abc import Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Annotated, Any, Final, Literal

import structlog
from fastapi import APIRouter, Depends, FastAPI, Header, Path, Query, Request
from fastapi.exception_handlers import (
    http_exception_handler,
    request_validation_exception_handler,
)
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field
from sqlalchemy import Engine
from sqlalchemy.exc import DataError, IntegrityError
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from parcours.channels.content import CreditorProfile
from parcours.domain.arrangements import ArrangementError, ArrangementRules
from parcours.ingest.api_rows import (
    RowRejected,
    check_debtor,
    check_invoice,
    store_debtor,
    store_invoice,
)
from parcours.ingest.fields import FieldError, parse_currency, parse_money
from parcours.ingest.rows import ImportOptions
from parcours.runtime.arrangements import (
    DEFAULT_RULES,
    DISPUTE_REASONS,
    CaseError,
    create_plan,
    make_promise,
    open_dispute,
    resolve_dispute,
)
from parcours.settings import Settings
from parcours.store.api import (
    CURSOR_MAX,
    CursorError,
    IdempotencyKeys,
    IntegratorStore,
    KeyVerifier,
    Principal,
    StoredResponse,
    decode_cursor,
    format_minor,
)
from parcours.web.api_payments import (
    REF_PATTERN,
    PaymentDesk,
    PaymentIn,
    PaymentOut,
    PaymentRequest,
)

__all__ = [
    "CASE_EVENT_TYPES",
    "ApiContext",
    "ApiProblem",
    "api_router",
    "build_api_app",
    "install_problem_handlers",
    "mount_api",
]

log = structlog.get_logger("parcours.api")

PROBLEM_MEDIA_TYPE: Final = "application/problem+json"
# Recorded as plain events the tick reads for holds; they carry no personal data.
CASE_EVENT_TYPES: Final = (
    "legal_hold.set",
    "legal_hold.lifted",
    "contact_objection",
    "vulnerability.flagged",
)
# A clock a little ahead of ours is not "in the future".
_SKEW: Final = dt.timedelta(minutes=5)
# An Idempotency-Key whose first request died without an answer may be retried after this.
_ABANDONED: Final = dt.timedelta(minutes=1)
# Fields whose values are personal: their messages never quote what was sent.
_PERSONAL: Final = frozenset(
    {"name", "email", "phone", "street", "postcode", "city", "birth_year", "evidence", "note"}
)
_ARRANGEMENT_FIELD: Final = {
    "amount_minor": "amount",
    "count": "instalments",
    "max_instalments": "instalments",
    "min_instalment_minor": "instalments",
    "max_months": "instalments",
    "first_within_days": "first_on",
    "total_minor": "case_ref",
}


# -- problems ----------------------------------------------------------------------------


class FieldIssue(BaseModel):
    field: str = Field(examples=["amount"])
    detail: str = Field(examples=["'12.345' has more than 2 decimals for EUR"])


class Problem(BaseModel):
    """RFC 9457 problem details, with the fields at fault in `errors`."""

    type: str = Field(examples=["/problems/invalid-fields"])
    title: str = Field(examples=["Some fields are invalid"])
    status: int = Field(examples=[422])
    detail: str = Field(examples=["amount: '12.345' has more than 2 decimals for EUR"])
    instance: str | None = Field(default=None, examples=["/api/v1/payments"])
    errors: list[FieldIssue] = Field(default_factory=list)


class ApiProblem(Exception):
    """An answer that is a problem: raised anywhere under a route, sent as problem JSON."""

    def __init__(
        self,
        status: int,
        slug: str,
        detail: str,
        errors: list[FieldIssue] | None = None,
        *,
        title: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.slug = slug
        self.detail = detail
        self.errors = errors or []
        self.title = title or HTTPStatus(status).phrase
        self.headers = headers

    @classmethod
    def invalid(cls, *issues: tuple[str, str]) -> ApiProblem:
        """422 naming each (field, what is wrong)."""
        errors = [FieldIssue(field=f, detail=d) for f, d in issues]
        return cls(
            422,
            "invalid-fields",
            "; ".join(f"{e.field}: {e.detail}" for e in errors),
            errors,
            title="Some fields are invalid",
        )

    @classmethod
    def not_found(cls, field_name: str, detail: str) -> ApiProblem:
        return cls(404, "not-found", detail, [FieldIssue(field=field_name, detail=detail)])

    @classmethod
    def conflict(cls, field_name: str, detail: str) -> ApiProblem:
        return cls(409, "conflict", detail, [FieldIssue(field=field_name, detail=detail)])

    def response(self, instance: str | None) -> Response:
        problem = Problem(
            type=f"/problems/{self.slug}",
            title=self.title,
            status=self.status,
            detail=self.detail,
            instance=instance,
            errors=self.errors,
        )
        return Response(
            problem.model_dump_json(),
            status_code=self.status,
            media_type=PROBLEM_MEDIA_TYPE,
            headers=self.headers,
        )


def _is_api(request: Request) -> bool:
    return request.url.path.startswith(api_router.prefix + "/") or (
        request.url.path == api_router.prefix
    )


def _field_of(loc: tuple[Any, ...] | list[Any]) -> str:
    where, *rest = [str(part) for part in loc] or ["body"]
    if where == "header":
        return "-".join(w.capitalize() for w in "".join(rest).split("-"))
    if where not in ("body", "query", "path", "cookie"):
        rest = [where, *rest]
    return ".".join(rest) or where


async def _on_validation(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    if not _is_api(request):
        return await request_validation_exception_handler(request, exc)
    issues = []
    for error in exc.errors():
        message = str(error.get("msg", "is invalid"))
        if error.get("type") == "json_invalid":
            issues.append(("body", "is not valid JSON"))
            continue
        elif error.get("type") == "missing":
            message = "is required"
        issues.append((_field_of(error.get("loc", ())), message))
    return ApiProblem.invalid(*issues).response(request.url.path)


async def _on_http(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    if not _is_api(request):
        return await http_exception_handler(request, exc)
    if exc.status_code == 400:  # FastAPI could not read the body (not UTF-8 JSON)
        return ApiProblem.invalid(("body", "is not UTF-8 JSON")).response(request.url.path)
    slug = {404: "not-found", 405: "method-not-allowed"}.get(exc.status_code, "http-error")
    headers = dict(exc.headers) if exc.headers else None
    return ApiProblem(exc.status_code, slug, str(exc.detail), headers=headers).response(
        request.url.path
    )


async def _on_problem(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiProblem)
    return exc.response(request.url.path)


async def _on_database(request: Request, exc: Exception) -> Response:
    """A constraint the checks before did not foresee: a conflict, not a crash."""
    if not _is_api(request):
        raise exc
    log.warning("api.database_refused", path=request.url.path, error=type(exc).__name__)
    if isinstance(exc, IntegrityError):
        problem = ApiProblem(409, "conflict", "the request conflicts with data stored meanwhile")
    else:
        problem = ApiProblem(422, "invalid-fields", "a value is out of the range it can take")
    return problem.response(request.url.path)


async def _on_crash(request: Request, exc: Exception) -> Response:
    log.error("api.crash", path=request.url.path, error=type(exc).__name__)
    if not _is_api(request):
        return Response("Internal Server Error", status_code=500, media_type="text/plain")
    detail = "the server failed to answer; nothing was changed unless a retry says so"
    return ApiProblem(500, "server-error", detail).response(request.url.path)


def install_problem_handlers(app: FastAPI) -> None:
    """Answer every error under `/api/` as problem JSON (other paths keep FastAPI's own)."""
    app.add_exception_handler(ApiProblem, _on_problem)
    app.add_exception_handler(RequestValidationError, _on_validation)
    app.add_exception_handler(StarletteHTTPException, _on_http)
    app.add_exception_handler(IntegrityError, _on_database)
    app.add_exception_handler(DataError, _on_database)
    app.add_exception_handler(Exception, _on_crash)


def _problems(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The OpenAPI `responses` of these problem statuses."""
    words = {
        401: "No valid API key",
        403: "The key lacks the scope",
        404: "No such case (or not this creditor's)",
        409: "Conflicts with the case's state or an earlier request",
        422: "Invalid fields, named in `errors`",
    }
    return {
        s: {
            "model": Problem,
            "description": words[s],
            "content": {PROBLEM_MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}},
        }
        for s in (401, 403, 422, *statuses)
    }


# -- context and authentication ----------------------------------------------------------


def _utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclass
class ApiContext:
    """What the API's routes need, kept at `app.state.api`."""

    engine: Engine
    settings: Settings
    verifier: KeyVerifier
    payments: PaymentDesk
    clock: Callable[[], dt.datetime] = _utc_now
    rules: Callable[[str], ArrangementRules] = field(default=lambda _name: DEFAULT_RULES)


def _profile(settings: Settings, creditor_name: str) -> CreditorProfile | None:
    """The creditor's letterhead and account from the channels file, if it has one."""
    from parcours.channels.config import ChannelsError, load_channels

    try:
        config = load_channels(settings.channels_file)
    except ChannelsError:
        return None
    setup = config.creditors.get(creditor_name, config.default)
    return None if setup is None else setup.profile.profile()


def _creditor_rules(settings: Settings) -> Callable[[str], ArrangementRules]:
    def rules(creditor_name: str) -> ArrangementRules:
        from parcours.channels.config import ChannelsError, load_channels

        try:
            config = load_channels(settings.channels_file)
        except ChannelsError as error:
            log.error("api.channels_unreadable", error=type(error).__name__)
            raise ApiProblem(
                503, "unavailable", "the creditor's limits cannot be read now; retry later"
            ) from error
        setup = config.creditors.get(creditor_name, config.default)
        return DEFAULT_RULES if setup is None else setup.limits.rules()

    return rules


def api_context(
    engine: Engine,
    settings: Settings,
    *,
    clock: Callable[[], dt.datetime] = _utc_now,
    key_ttl: float = 10.0,
    batch_payments: bool = True,
) -> ApiContext:
    """The API's context: keys verified against `engine` and cached `key_ttl` seconds,
    payments booked in batches (or one transaction each), plan and promise limits read
    from the settings' channels file."""
    return ApiContext(
        engine,
        settings,
        KeyVerifier(engine, ttl=key_ttl),
        PaymentDesk(engine, clock, batched=batch_payments),
        clock,
        _creditor_rules(settings),
    )


def mount_api(app: FastAPI, engine: Engine, settings: Settings) -> None:
    """Serve the API from `app`: context, routes and problem handlers."""
    app.state.api = api_context(engine, settings)
    app.include_router(api_router)
    install_problem_handlers(app)


def build_api_app(
    engine: Engine,
    settings: Settings,
    *,
    clock: Callable[[], dt.datetime] = _utc_now,
    key_ttl: float = 10.0,
    batch_payments: bool = True,
) -> FastAPI:
    """An app serving only the API (tests, benchmarks); OpenAPI at `/openapi.json`."""
    app = FastAPI(title="parcours integrator API", version="1", docs_url=None, redoc_url=None)
    app.state.api = api_context(
        engine, settings, clock=clock, key_ttl=key_ttl, batch_payments=batch_payments
    )
    app.include_router(api_router)
    install_problem_handlers(app)
    return app


_bearer = HTTPBearer(
    auto_error=False,
    scheme_name="ApiKey",
    description="A creditor's API key: `Authorization: Bearer pk_live_…`.",
)


def _context(request: Request) -> ApiContext:
    context: ApiContext = request.app.state.api
    return context


def _unauthorized(detail: str) -> ApiProblem:
    return ApiProblem(401, "unauthorized", detail, headers={"WWW-Authenticate": "Bearer"})


async def _authenticate(request: Request, scope: str) -> Principal:
    """The principal of the request's bearer key, if it has `scope`."""
    scheme, _, presented = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not presented.strip():
        raise _unauthorized("send the API key as `Authorization: Bearer pk_live_…`")
    presented = presented.strip()
    context = _context(request)
    found = context.verifier.cached(presented)
    if found is None:
        found = await run_in_threadpool(context.verifier.verify, presented, context.clock())
    if found is None:
        raise _unauthorized("the API key is unknown or revoked")
    if scope not in found.scopes:
        raise ApiProblem(403, "forbidden", f"this API key lacks the {scope!r} scope")
    return found


def _require(scope: str) -> Callable[..., Any]:
    async def principal(
        request: Request,
        _credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    ) -> Principal:
        return await _authenticate(request, scope)

    return principal


Reader = Annotated[Principal, Depends(_require("read"))]
Writer = Annotated[Principal, Depends(_require("write"))]
Payer = Annotated[Principal, Depends(_require("payments"))]


# -- models ------------------------------------------------------------------------------

_PRINTABLE = r"^[^\x00-\x1f\x7f]*$"


def _utc(value: dt.datetime) -> dt.datetime:
    try:
        return value.astimezone(dt.UTC)
    except OverflowError:
        raise ValueError("is out of range") from None


Ref = Annotated[str, Field(min_length=1, max_length=64, pattern=REF_PATTERN)]
Amount = Annotated[
    str,
    Field(
        pattern=r"^[0-9]{1,15}(\.[0-9]{1,6})?$",
        description="Decimal string with '.' (no float): as many decimals as the currency has.",
        examples=["12.30"],
    ),
]
Currency = Annotated[str, Field(pattern=r"^[A-Za-z]{3}$", examples=["EUR"])]
Moment = Annotated[AwareDatetime, AfterValidator(_utc)]


def _text(max_length: int, *default: None, description: str | None = None) -> Any:
    """A one-line text field of 1 to `max_length` characters (required without default)."""
    return Field(
        *default, min_length=1, max_length=max_length, pattern=_PRINTABLE, description=description
    )


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DebtorIn(_In):
    """A debtor's data; fields left out are cleared, as a CSV row without them would."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"name": "Alice Martin", "email": "alice@example.be", "phone": "0470123456",
                 "language": "fr", "country": "BE", "street": "Rue Haute 1",
                 "postcode": "1000", "city": "Bruxelles"}
            ]
        },
    )  # fmt: skip

    name: str = _text(200)
    email: str | None = _text(320, None)
    phone: str | None = _text(40, None)
    language: str | None = _text(16, None)
    country: str | None = _text(2, None)
    street: str | None = _text(200, None)
    postcode: str | None = _text(16, None)
    city: str | None = _text(100, None)
    birth_year: int | None = Field(default=None, ge=1000, le=9999)
    timezone: str | None = _text(64, None)


class DebtorOut(BaseModel):
    ref: str
    result: Literal["created", "updated", "unchanged"]
    name: str
    language: str
    country: str | None
    timezone: str | None
    birth_year: int | None
    email: str | None
    phone: str | None
    street: str | None
    postcode: str | None
    city: str | None


class InvoiceIn(_In):
    """An invoice; a new one opens a case for its debtor when none is open."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"debtor_ref": "D1", "amount": "120.00", "currency": "EUR",
                 "issue_date": "2026-11-05", "due_date": "2026-12-05",
                 "description": "Subscription November"}
            ]
        },
    )  # fmt: skip

    debtor_ref: Ref
    amount: Amount
    currency: Currency
    issue_date: dt.date
    due_date: dt.date
    description: str | None = _text(500, None)


class InvoiceOut(BaseModel):
    ref: str
    result: Literal["created", "updated", "unchanged"]
    debtor_ref: str
    case_ref: str
    amount: str
    paid: str
    currency: str
    issue_date: dt.date
    due_date: dt.date
    description: str | None
    structured_communication: str


class PromiseIn(_In):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"amount": "50.00", "due_on": "2026-12-20"}]},
    )

    amount: Amount
    due_on: dt.date


class PromiseOut(BaseModel):
    case_ref: str
    amount: str
    currency: str
    due_on: dt.date
    state: Literal["pending"]


class PlanIn(_In):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"instalments": 3, "first_on": "2026-12-15", "every": "month"}]
        },
    )

    instalments: int = Field(ge=1, le=120)
    first_on: dt.date
    every: Literal["month", "fortnight", "week"] = "month"


class InstalmentOut(BaseModel):
    number: int
    due_on: dt.date
    amount: str
    epc_qr: str | None = Field(
        default=None,
        description="The EPC069-12 payload of the instalment's QR code (Belgian banking apps "
        "scan it): the creditor's account, the amount and the structured communication. "
        "None when the creditor has no profile in the channels file.",
    )


class PlanOut(BaseModel):
    id: str
    case_ref: str
    total: str
    currency: str
    every: str
    instalments: list[InstalmentOut]


DisputeReason = Literal[DISPUTE_REASONS]  # type: ignore[valid-type]


class DisputeIn(_In):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"reason": "already_paid"}]}
    )

    reason: DisputeReason
    evidence: str | None = _text(
        4000, None, description="The debtor's words; kept with the dispute, never logged."
    )


class DisputeOut(BaseModel):
    id: str
    case_ref: str
    reason: str
    state: Literal["open"]


class ResolveIn(_In):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"outcome": "rejected"}]}
    )

    outcome: Literal["upheld", "rejected"]
    note: str | None = _text(2000, None)
    adjustment: Amount | None = Field(
        default=None, description="Upheld in part: the amount taken off the balance."
    )


class ResolveOut(BaseModel):
    case_ref: str
    outcome: Literal["upheld", "rejected"]
    adjustment: str | None


class CaseEventIn(_In):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"type": "legal_hold.set"}]}
    )

    type: Literal[CASE_EVENT_TYPES]  # type: ignore[valid-type]
    occurred_at: Moment | None = Field(default=None, description="Default: now.")


class CaseEventOut(BaseModel):
    id: str
    case_ref: str
    type: str
    occurred_at: dt.datetime


class InvoiceState(BaseModel):
    ref: str
    amount: str
    paid: str
    open: str
    issue_date: dt.date
    due_date: dt.date
    structured_communication: str
    description: str | None


class PromiseState(BaseModel):
    amount: str
    due_on: dt.date
    made_at: dt.datetime
    state: str
    source: str
    settled_at: dt.datetime | None


class PlanState(BaseModel):
    id: str
    total: str
    paid: str
    state: str
    source: str
    created_at: dt.datetime
    instalments: list[InstalmentOut]


class DisputeState(BaseModel):
    id: str
    reason: str
    state: str
    opened_at: dt.datetime
    opened_by: str
    resolved_at: dt.datetime | None
    adjustment: str | None


class JourneyState(BaseModel):
    journey: str
    version: int
    step: str
    persona: str | None
    enrolled_at: dt.datetime
    wake_at: dt.datetime | None
    done: bool
    exit_reason: str | None


class CaseOut(BaseModel):
    ref: str
    debtor_ref: str
    status: str
    opened_at: dt.datetime
    closed_at: dt.datetime | None
    currency: str | None
    balance: str
    credit: str
    invoices: list[InvoiceState]
    promise: PromiseState | None
    plan: PlanState | None
    dispute: DisputeState | None
    journey: JourneyState | None


class CaseSummary(BaseModel):
    ref: str
    debtor_ref: str
    status: str
    opened_at: dt.datetime
    closed_at: dt.datetime | None
    currency: str | None
    balance: str


class CasePage(BaseModel):
    data: list[CaseSummary]
    next_cursor: str | None


class TimelineItem(BaseModel):
    at: dt.datetime
    id: str
    kind: str = Field(description="event, payment, message, task or fee")
    type: str
    data: dict[str, Any]


class TimelinePage(BaseModel):
    data: list[TimelineItem]
    next_cursor: str | None


class UnmatchedLine(BaseModel):
    id: str
    bank_ref: str
    account: str
    booked_on: dt.date
    amount: str
    currency: str
    structured_communication: str | None
    text: str | None
    counterparty_name: str | None
    counterparty_iban: str | None
    reason: str | None


class UnmatchedPage(BaseModel):
    data: list[UnmatchedLine]
    next_cursor: str | None


# -- shared steps ------------------------------------------------------------------------

IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=255,
        pattern=r"^[\x21-\x7e]+$",
        description="Any unique string (a UUID): a retry with the same key and body gets "
        "the first answer back, for 24 hours.",
    ),
]
CaseRefPath = Annotated[str, Path(min_length=1, max_length=80, pattern=REF_PATTERN)]
RefPath = Annotated[str, Path(min_length=1, max_length=64, pattern=REF_PATTERN)]
Limit = Annotated[int, Query(ge=1, le=200, description="Items per page.")]
CursorQuery = Annotated[
    str | None,
    Query(
        max_length=CURSOR_MAX,
        pattern=r"^[A-Za-z0-9_-]*$",
        description="`next_cursor` of the page before.",
    ),
]


def _json(status: int, model: BaseModel) -> Response:
    return Response(model.model_dump_json(), status_code=status, media_type="application/json")


def _money(text: str, currency: str, name: str = "amount") -> int:
    try:
        return parse_money(text, currency)
    except FieldError as error:
        raise ApiProblem.invalid((name, str(error))) from None


def _currency(text: str) -> str:
    try:
        return parse_currency(text)
    except FieldError as error:
        raise ApiProblem.invalid(("currency", str(error))) from None


def _not_future(moment: dt.datetime, now: dt.datetime, name: str) -> None:
    if moment > now + _SKEW:
        raise ApiProblem.invalid((name, f"{moment.isoformat()} is in the future"))


def _row_problem(error: RowRejected, path_field: str) -> ApiProblem:
    """The CSV's row errors as a problem; the row's own ref is the path's `ref`."""
    issues = []
    for problem in error.problems:
        detail = problem.detail
        if problem.field in _PERSONAL:
            # The CSV's messages quote the value; a person's data stays out of the answer.
            detail = re.sub(r"^'.*?' ", "the value ", detail)
        issues.append(("ref" if problem.field == path_field else problem.field, detail))
    return ApiProblem.invalid(*issues)


def _case_problem(error: CaseError) -> ApiProblem:
    cause = error.__cause__
    if isinstance(cause, ArrangementError):
        return ApiProblem.invalid((_ARRANGEMENT_FIELD.get(cause.field, cause.field), cause.message))
    text = str(error)
    name, _, rest = text.partition(": ")
    if name in ("reason", "adjustment") and rest:
        return ApiProblem.invalid((name, rest))
    if text.startswith("no case"):
        return ApiProblem.not_found("case_ref", text)
    return ApiProblem.conflict("case_ref", text)


def _fingerprint(label: str, body: BaseModel) -> str:
    return hashlib.sha256(f"{label}\n{body.model_dump_json()}".encode()).hexdigest()


def _key_reused() -> ApiProblem:
    return ApiProblem(
        422,
        "idempotency-key-reused",
        "this Idempotency-Key was used for another request: use a new key",
        [FieldIssue(field="Idempotency-Key", detail="was used with another body or path")],
    )


def _key_running() -> ApiProblem:
    return ApiProblem(
        409,
        "idempotency-key-in-use",
        "a request with this Idempotency-Key is still running: retry in a moment",
        [FieldIssue(field="Idempotency-Key", detail="is still being answered")],
    )


def _replay(stored: StoredResponse, label: str, fingerprint: str) -> Response:
    if stored.request != label or stored.request_hash != fingerprint:
        raise _key_reused()
    return Response(
        stored.body or "",
        status_code=stored.status_code,
        media_type="application/json",
        headers={"Idempotent-Replayed": "true"},
    )


def _label(request: Request) -> str:
    """What an idempotency key is bound to besides the body: the method and path."""
    return f"{request.method} {request.url.path}"


def _idempotent(
    request: Request,
    principal: Principal,
    key: str | None,
    body: BaseModel,
    run: Callable[[], tuple[int, BaseModel]],
) -> Response:
    """Run a request once per Idempotency-Key: the key is reserved (committed) before the
    request runs and its answer stored after; an answer that is a problem is not kept, so
    a retry runs again."""
    context, label = _context(request), _label(request)
    if key is None:
        return _json(*run())
    fingerprint = _fingerprint(label, body)
    engine, owner = context.engine, principal.creditor_id
    for _ in range(3):
        now = context.clock()
        with engine.connect() as connection:
            stored = IdempotencyKeys(connection, owner).get(key, now)
        if stored is not None and stored.running and now - stored.created_at > _ABANDONED:
            with engine.begin() as connection:
                IdempotencyKeys(connection, owner).discard(key)
            continue
        if stored is not None:
            if stored.running:
                raise _key_running()
            return _replay(stored, label, fingerprint)
        try:
            with engine.begin() as connection:
                IdempotencyKeys(connection, owner).insert(key, label, fingerprint, now)
        except IntegrityError:
            continue  # another request took the key meanwhile: read what it left
        break
    else:
        raise _key_running()
    try:
        status, answer = run()
    except BaseException:
        with engine.begin() as connection:
            IdempotencyKeys(connection, owner).discard(key)
        raise
    text = answer.model_dump_json()
    with engine.begin() as connection:
        IdempotencyKeys(connection, owner).complete(key, status, text)
    return Response(text, status_code=status, media_type="application/json")


def _options(context: ApiContext, principal: Principal, now: dt.datetime) -> ImportOptions:
    settings = context.settings
    return ImportOptions(
        creditor_id=principal.creditor_id,
        creditor_name=principal.creditor_name,
        now=now,
        default_region=settings.default_locale.rpartition("_")[2].upper() or "BE",
        default_language=settings.default_locale.partition("_")[0].lower() or "fr",
        default_zone=zoneinfo.ZoneInfo(settings.default_timezone),
    )


def _case_currency(context: ApiContext, principal: Principal, case_ref: str) -> str:
    """The currency of an existing case of this creditor (404 when there is none)."""
    with context.engine.connect() as connection:
        store = IntegratorStore(connection, principal.creditor_id)
        if store.case_row(case_ref) is None:
            raise ApiProblem.not_found("case_ref", f"no case {case_ref!r}")
        currency = store.case_currency(case_ref)
    if currency is None:
        raise ApiProblem.conflict("case_ref", f"case {case_ref} has no invoice: it owes nothing")
    return currency


def _cursor(text: str | None, *kinds: type) -> tuple[Any, ...] | None:
    if not text:
        return None
    try:
        return decode_cursor(text, *kinds)
    except CursorError as error:
        raise ApiProblem.invalid(("cursor", str(error))) from None


def _put_row(
    kind: Literal["debtor", "invoice"],
    ref: str,
    values: dict[str, Any],
    principal: Principal,
    request: Request,
) -> tuple[str, dict[str, Any]]:
    """Check a debtor or invoice by the CSV import's rules, store it, audit a change and
    read it back: (created | updated | unchanged, the stored record)."""
    context = _context(request)
    now = context.clock()
    options = _options(context, principal, now)
    check, store_row = (
        (check_debtor, store_debtor) if kind == "debtor" else (check_invoice, store_invoice)
    )
    try:
        row = check(ref, values, options)
        with context.engine.begin() as connection:
            result = store_row(connection, row, options)
            store = IntegratorStore(connection, principal.creditor_id)
            if result != "unchanged":
                store.audit(principal.actor, f"api.{kind}.{result}", f"{kind}:{ref}", {}, now)
            stored = store.debtor(ref) if kind == "debtor" else store.invoice(ref)
            if stored is None:  # the CSV's rules trimmed the ref: refused, rolled back
                raise ApiProblem.invalid(("ref", "must not start or end with a space"))
    except RowRejected as error:
        raise _row_problem(error, f"{kind}_ref") from None
    return result, stored


# -- routes ------------------------------------------------------------------------------

api_router = APIRouter(prefix="/api/v1")


@api_router.put(
    "/debtors/{ref}",
    tags=["portfolio"],
    response_model=DebtorOut,
    status_code=200,
    responses={201: {"model": DebtorOut, "description": "Created"}, **_problems()},
    summary="Create or replace a debtor",
)
def put_debtor(ref: RefPath, body: DebtorIn, principal: Writer, request: Request) -> Response:
    """Checked by the CSV import's rules (e-mail, phone by country, address complete…)."""
    values = body.model_dump(exclude_none=True)
    if body.birth_year is not None:
        values["birth_year"] = str(body.birth_year)
    result, stored = _put_row("debtor", ref, values, principal, request)
    return _json(201 if result == "created" else 200, DebtorOut(result=result, **stored))


@api_router.put(
    "/invoices/{ref}",
    tags=["portfolio"],
    response_model=InvoiceOut,
    status_code=200,
    responses={201: {"model": InvoiceOut, "description": "Created"}, **_problems()},
    summary="Create or replace an invoice",
)
def put_invoice(ref: RefPath, body: InvoiceIn, principal: Writer, request: Request) -> Response:
    """Checked by the CSV import's rules; a new invoice joins its debtor's open case, or
    opens one (`C-<debtor_ref>`)."""
    values = body.model_dump(exclude_none=True, mode="json")
    result, stored = _put_row("invoice", ref, values, principal, request)
    return _json(201 if result == "created" else 200, InvoiceOut(result=result, **stored))


@api_router.post(
    "/payments",
    tags=["payments"],
    response_model=PaymentOut,
    status_code=201,
    responses={200: {"model": PaymentOut, "description": "Booked before"}, **_problems(409)},
    summary="Book a payment received",
)
async def post_payment(
    body: PaymentIn,
    principal: Payer,
    request: Request,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    """Books the amount on `invoice_ref` (what exceeds it on the case's other open
    invoices, oldest first), or on `case_ref`'s open invoices, oldest first; an
    overpayment is kept as a credit. The journey hears of it at once. The same `ref`
    again answers 200 with the payment booked the first time."""
    context = _context(request)
    if body.invoice_ref is None and body.case_ref is None:
        raise ApiProblem.invalid(("invoice_ref", "give invoice_ref or case_ref"))
    currency = _currency(body.currency)
    try:
        paid_at = _utc(body.paid_at)
    except ValueError as error:
        raise ApiProblem.invalid(("paid_at", str(error))) from None
    _not_future(paid_at, context.clock(), "paid_at")
    label = _label(request)
    fingerprint = _fingerprint(label, body) if idempotency_key is not None else ""
    outcome = await context.payments.book(
        PaymentRequest(principal, body, currency, paid_at, idempotency_key, label, fingerprint)
    )
    if outcome.problem is not None:
        kind, name, detail = outcome.problem
        if kind == "invalid":
            raise ApiProblem.invalid((name, detail))
        if kind == "conflict":
            raise ApiProblem.conflict(name, detail)
        if kind == "reused":
            raise _key_reused()
        raise _key_running()
    headers = {"Idempotent-Replayed": "true"} if outcome.replayed else None
    return Response(
        outcome.body, status_code=outcome.status, media_type="application/json", headers=headers
    )


@api_router.post(
    "/cases/{case_ref}/promises",
    tags=["cases"],
    response_model=PromiseOut,
    status_code=201,
    responses=_problems(404, 409),
    summary="Record a promise to pay",
)
def post_promise(
    case_ref: CaseRefPath,
    body: PromiseIn,
    principal: Writer,
    request: Request,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    """Within the creditor's limits (amount up to the balance, date within its horizon);
    it replaces a pending promise, and the journey waits for its date."""
    context = _context(request)

    def run() -> tuple[int, BaseModel]:
        now = context.clock()
        currency = _case_currency(context, principal, case_ref)
        minor = _money(body.amount, currency)
        try:
            make_promise(
                context.engine, principal.creditor_id, case_ref, minor, body.due_on, now,
                source="creditor", actor=principal.actor,
                rules=context.rules(principal.creditor_name),
            )  # fmt: skip
        except CaseError as error:
            raise _case_problem(error) from None
        amount = format_minor(minor, currency)
        return 201, PromiseOut(
            case_ref=case_ref, amount=amount, currency=currency, due_on=body.due_on,
            state="pending",
        )  # fmt: skip

    return _idempotent(request, principal, idempotency_key, body, run)


@api_router.post(
    "/cases/{case_ref}/plans",
    tags=["cases"],
    response_model=PlanOut,
    status_code=201,
    responses=_problems(404, 409),
    summary="Agree a payment plan",
)
def post_plan(
    case_ref: CaseRefPath,
    body: PlanIn,
    principal: Writer,
    request: Request,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    """The case's balance in equal instalments within the creditor's limits (number,
    minimum amount, duration, first date); 422 names the limit broken."""
    context = _context(request)

    def run() -> tuple[int, BaseModel]:
        now = context.clock()
        currency = _case_currency(context, principal, case_ref)
        try:
            made = create_plan(
                context.engine, principal.creditor_id, case_ref, body.instalments,
                body.first_on, now, source="creditor", actor=principal.actor, every=body.every,
                rules=context.rules(principal.creditor_name),
            )  # fmt: skip
        except CaseError as error:
            raise _case_problem(error) from None
        profile = _profile(context.settings, principal.creditor_name)
        transfers = made.transfers(profile) if profile else []
        qr: list[str | None] = [t.payload() for t in transfers] or [None] * len(made.instalments)
        return 201, PlanOut(
            id=made.plan_id,
            case_ref=case_ref,
            total=format_minor(made.total_minor, currency),
            currency=made.currency,
            every=body.every,
            instalments=[
                InstalmentOut(
                    number=i.number, due_on=i.due_on, amount=format_minor(i.amount_minor, currency),
                    epc_qr=code,
                )
                for i, code in zip(made.instalments, qr, strict=True)
            ],
        )  # fmt: skip

    return _idempotent(request, principal, idempotency_key, body, run)


@api_router.post(
    "/cases/{case_ref}/disputes",
    tags=["cases"],
    response_model=DisputeOut,
    status_code=201,
    responses=_problems(404, 409),
    summary="Open a dispute (collection pauses)",
)
def post_dispute(
    case_ref: CaseRefPath,
    body: DisputeIn,
    principal: Writer,
    request: Request,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    """Every collection contact pauses until the dispute is resolved."""
    context = _context(request)

    def run() -> tuple[int, BaseModel]:
        try:
            dispute = open_dispute(
                context.engine, principal.creditor_id, case_ref, body.reason, body.evidence,
                context.clock(), source="creditor", actor=principal.actor,
            )  # fmt: skip
        except CaseError as error:
            raise _case_problem(error) from None
        return 201, DisputeOut(id=dispute, case_ref=case_ref, reason=body.reason, state="open")

    return _idempotent(request, principal, idempotency_key, body, run)


@api_router.post(
    "/cases/{case_ref}/disputes/resolve",
    tags=["cases"],
    response_model=ResolveOut,
    status_code=200,
    responses=_problems(404, 409),
    summary="Rule on the open dispute",
)
def post_resolve(
    case_ref: CaseRefPath,
    body: ResolveIn,
    principal: Writer,
    request: Request,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    """Upheld closes the case (or, with `adjustment`, lowers what is owed); rejected lets
    the journey resume."""
    context = _context(request)

    def run() -> tuple[int, BaseModel]:
        adjustment = None
        if body.adjustment is not None:
            currency = _case_currency(context, principal, case_ref)
            adjustment = _money(body.adjustment, currency, "adjustment")
        try:
            resolve_dispute(
                context.engine, principal.creditor_id, case_ref, body.outcome, context.clock(),
                actor=principal.actor, note=body.note, adjustment_minor=adjustment,
            )  # fmt: skip
        except CaseError as error:
            raise _case_problem(error) from None
        return 200, ResolveOut(case_ref=case_ref, outcome=body.outcome, adjustment=body.adjustment)

    return _idempotent(request, principal, idempotency_key, body, run)


@api_router.post(
    "/cases/{case_ref}/events",
    tags=["cases"],
    response_model=CaseEventOut,
    status_code=201,
    responses=_problems(404),
    summary="Record a hold, an objection or a vulnerability",
)
def post_case_event(
    case_ref: CaseRefPath,
    body: CaseEventIn,
    principal: Writer,
    request: Request,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    """`legal_hold.set` / `legal_hold.lifted`, `contact_objection`, `vulnerability.flagged`:
    the journeys hold or adapt collection at their next tick. Nothing personal is kept."""
    context = _context(request)

    def run() -> tuple[int, BaseModel]:
        now = context.clock()
        occurred = body.occurred_at or now
        _not_future(occurred, now, "occurred_at")
        with context.engine.begin() as connection:
            store = IntegratorStore(connection, principal.creditor_id)
            case = store.case_row(case_ref)
            if case is None:
                raise ApiProblem.not_found("case_ref", f"no case {case_ref!r}")
            event = store.record_event(
                case.id, case.debtor_id, body.type, occurred, now, {"source": "api"}
            )
            store.audit(principal.actor, body.type, case_ref, {"event": str(event)}, now)
        return 201, CaseEventOut(
            id=str(event), case_ref=case_ref, type=body.type, occurred_at=occurred
        )

    return _idempotent(request, principal, idempotency_key, body, run)


@api_router.get(
    "/cases",
    tags=["cases"],
    response_model=CasePage,
    responses=_problems(),
    summary="List cases",
)
def list_cases(
    principal: Reader,
    request: Request,
    cursor: CursorQuery = None,
    limit: Limit = 50,
    status: Annotated[Literal["open", "closed"] | None, Query()] = None,
) -> CasePage:
    """In reference order, `limit` at a time."""
    after = _cursor(cursor, str)
    with _context(request).engine.connect() as connection:
        page = IntegratorStore(connection, principal.creditor_id).cases(
            after[0] if after else None, limit, status
        )
    return CasePage.model_validate({"data": page.items, "next_cursor": page.next_cursor})


@api_router.get(
    "/cases/{case_ref}",
    tags=["cases"],
    response_model=CaseOut,
    responses=_problems(404),
    summary="A case's state",
)
def get_case(case_ref: CaseRefPath, principal: Reader, request: Request) -> CaseOut:
    """Balance, invoices, the latest promise, plan (with instalments) and dispute, and
    where the case stands in its journey."""
    with _context(request).engine.connect() as connection:
        state = IntegratorStore(connection, principal.creditor_id).case_state(case_ref)
    if state is None:
        raise ApiProblem.not_found("case_ref", f"no case {case_ref!r}")
    return CaseOut.model_validate(state)


@api_router.get(
    "/cases/{case_ref}/timeline",
    tags=["cases"],
    response_model=TimelinePage,
    responses=_problems(404),
    summary="What happened on a case",
)
def get_timeline(
    case_ref: CaseRefPath,
    principal: Reader,
    request: Request,
    cursor: CursorQuery = None,
    limit: Limit = 50,
) -> TimelinePage:
    """Events, payments and messages, oldest first, `limit` at a time."""
    after = _cursor(cursor, str, str)
    position = None
    if after is not None:
        try:
            position = (dt.datetime.fromisoformat(after[0]), _uuid(after[1]))
        except ValueError:
            raise ApiProblem.invalid(("cursor", "is not a cursor from this listing")) from None
    with _context(request).engine.connect() as connection:
        store = IntegratorStore(connection, principal.creditor_id)
        case = store.case_row(case_ref)
        if case is None:
            raise ApiProblem.not_found("case_ref", f"no case {case_ref!r}")
        page = store.timeline(case.id, position, limit)
    return TimelinePage.model_validate({"data": page.items, "next_cursor": page.next_cursor})


@api_router.get(
    "/unmatched",
    tags=["payments"],
    response_model=UnmatchedPage,
    responses=_problems(),
    summary="Statement lines waiting for a person",
)
def list_unmatched(
    principal: Reader,
    request: Request,
    cursor: CursorQuery = None,
    limit: Limit = 50,
) -> UnmatchedPage:
    """Bank statement lines no case was found for, oldest first: match them with
    `parcours payments match`."""
    after = _cursor(cursor, str, str)
    position = None
    if after is not None:
        try:
            position = (dt.date.fromisoformat(after[0]), _uuid(after[1]))
        except ValueError:
            raise ApiProblem.invalid(("cursor", "is not a cursor from this listing")) from None
    with _context(request).engine.connect() as connection:
        page = IntegratorStore(connection, principal.creditor_id).unmatched(position, limit)
    return UnmatchedPage.model_validate({"data": page.items, "next_cursor": page.next_cursor})


def _uuid(text: str) -> uuid.UUID:
    return uuid.UUID(text)
