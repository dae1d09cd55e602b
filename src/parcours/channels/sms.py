"""SMS over HTTP: the "sms-http" provider (Twilio's Messages API or a generic JSON gateway)
and the pure functions that turn the carrier's webhooks into delivery events.

One `httpx.Client` per provider is kept for its lifetime, so a batch of sends reuses one
TLS connection instead of paying a handshake per message; `close()` releases it.

Twilio preset — ``POST {base_url}/2010-04-01/Accounts/{AccountSid}/Messages.json``,
form-encoded ``To`` (E.164), ``From`` (a number or an alphanumeric sender id) or
``MessagingServiceSid``, ``Body`` and ``StatusCallback``, HTTP Basic auth
``AccountSid:AuthToken``. The reply is the Message resource (JSON ``sid``, ``status``);
an error reply carries ``code``, ``message``, ``more_info`` and ``status``. Sources:
https://www.twilio.com/docs/messaging/api/message-resource,
https://www.twilio.com/docs/api/errors (21211 invalid 'To' number, 21610 attempt to send
to an unsubscribed recipient — who replied STOP —, 21614 'To' not a mobile number, 20003
authentication, 20429 too many requests). Twilio itself warns that error codes get
refined over time, so the outcome follows the HTTP status and the code only enriches the
detail. The attempt id travels in ``I-Twilio-Idempotency-Token``: Twilio documents that
header on the webhooks *it* sends (so receivers can drop retries); our sources do not say
that the Messages API honours it on requests, so the outbox's one-row-one-attempt rule
remains the real guard, and a gateway that does honour it (the test fake does) never
sends twice.

Generic preset — ``POST {base_url}{path}`` with a JSON object ``to``, ``from``, ``text``,
``reference`` (the attempt id), ``Authorization: Bearer <token>`` and
``Idempotency-Key: <attempt id>``; a 2xx reply carries ``id``, an error reply may carry
a short ``code``.

Outcomes: 2xx → SENT (units = segments, see `parcours.channels.gsm`); 408, 429, 5xx,
timeouts and network errors → TRANSIENT, with the carrier's Retry-After as
`retry_after`; any other 4xx → PERMANENT, as is a message that cannot be sent at all (no
mobile number, an empty text, more segments than allowed). A detail never quotes the
carrier's message text: Twilio's error messages repeat the phone number.

Webhooks — status callbacks are form posts with ``MessageSid`` and ``MessageStatus``
(queued, sending, sent, delivered, undelivered, failed, read, ...) plus ``ErrorCode``
when it failed (https://www.twilio.com/docs/messaging/guides/track-outbound-message-status);
an inbound message has ``From`` and ``Body``. Every webhook is signed in
``X-Twilio-Signature``: base64 HMAC-SHA1, keyed with the AuthToken, of the full URL
followed by each POST parameter name and value sorted by name
(https://www.twilio.com/docs/usage/security). Twilio's default opt-out keywords are STOP,
STOPALL, UNSUBSCRIBE, CANCEL, END and QUIT; we add the French ARRÊT and the Dutch
AFMELDEN and UITSCHRIJVEN (Dutch speakers mostly write STOP).
"""

from __future__ import annotations

import base64
import datetime as dt
import email.utils
import functools
import hashlib
import hmac
import re
import ssl
import unicodedata
from collections.abc import Callable, Iterable, Mapping
from types import TracebackType
from typing import Any, ClassVar, Final, Literal, Self
from urllib.parse import quote, urlsplit, urlunsplit

import httpx
import structlog
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from parcours.channels.base import DeliveryEvent, DeliveryKind, Outcome, SendResult
from parcours.channels.content import Channel, MessageContent, Rendered, SmsBody
from parcours.channels.gsm import segments

__all__ = [
    "OPT_OUT_KEYWORDS",
    "SmsHttpConfig",
    "SmsHttpProvider",
    "UnsendableSms",
    "is_opt_out",
    "is_valid_sender",
    "parse_inbound",
    "parse_status_callback",
    "twilio_signature",
    "verify_twilio_signature",
]

log = structlog.get_logger("parcours.channels.sms")

TWILIO_API = "https://api.twilio.com"
MAX_RETRY_AFTER: Final = dt.timedelta(days=1)  # a longer hint is a carrier's mistake

OPT_OUT_KEYWORDS: Final = frozenset(
    {"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "ARRET", "AFMELDEN", "UITSCHRIJVEN"}
)

# Twilio error codes we name in a result's detail (the outcome follows the HTTP status).
TWILIO_ERRORS: Final = {
    20003: "authentication failed",
    20429: "too many requests",
    21211: "invalid 'To' number",
    21408: "sending to this region is not enabled",
    21602: "message body is required",
    21603: "'From' is required",
    21604: "'To' is required",
    21610: "recipient unsubscribed (replied STOP)",
    21614: "'To' is not a mobile number",
    21617: "body exceeds 1600 characters",
}

_STATUS_KINDS: Final = {
    "delivered": DeliveryKind.DELIVERED,
    "undelivered": DeliveryKind.BOUNCED,
    "failed": DeliveryKind.BOUNCED,
    "read": DeliveryKind.OPENED,  # read receipts (RCS, WhatsApp); plain SMS has none
}

_E164: Final = re.compile(r"\+[1-9][0-9]{1,14}")
_ALPHANUMERIC_SENDER: Final = re.compile(r"(?=[0-9 ]*[A-Za-z])[A-Za-z0-9 ]{1,11}")
_TWILIO_SID: Final = re.compile(r"[A-Z]{2}[0-9a-fA-F]{32}")
_ERROR_TOKEN: Final = re.compile(r"[A-Za-z0-9_.\-]{1,40}")
_KEYWORD_TRIM: Final = " \t\r\n.!?;:,\"'«»"


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@functools.cache
def _tls() -> ssl.SSLContext:
    """One TLS context per process: each new one loads the CA bundle again (tens of ms)."""
    return httpx.create_ssl_context()


def is_valid_sender(sender: str) -> bool:
    """Whether `sender` is an E.164 number or an alphanumeric sender id (≤ 11, a letter)."""
    return bool(_E164.fullmatch(sender) or _ALPHANUMERIC_SENDER.fullmatch(sender))


class UnsendableSms(ValueError):
    """The message cannot be sent as it is (no mobile number, no text ...): never retry."""


class SmsHttpConfig(BaseModel):
    """How to reach the SMS gateway. `token` is Twilio's AuthToken or the bearer token."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    preset: Literal["twilio", "generic"] = "twilio"
    base_url: str = TWILIO_API
    token: SecretStr
    account_sid: str | None = Field(default=None, description="Twilio: AC followed by 32 hex")
    messaging_service_sid: str | None = Field(
        default=None, description="Twilio: send through this Messaging Service (MG...)"
    )
    sender: str | None = Field(
        default=None, description="Replaces every creditor's own sender id when set."
    )
    status_callback_url: str | None = Field(
        default=None,
        description="Twilio posts delivery reports here; the attempt id is appended as "
        "the `attempt` query parameter.",
    )
    path: str = Field(default="/messages", description="Generic gateway: the send endpoint")
    connect_timeout_s: float = Field(default=5.0, gt=0)
    read_timeout_s: float = Field(default=10.0, gt=0)
    max_segments: int = Field(
        default=10, ge=1, description="A longer text is a template mistake: never sent."
    )

    @field_validator("base_url")
    @classmethod
    def _no_trailing_slash(cls, value: str) -> str:
        return value.rstrip("/")

    @field_validator("sender")
    @classmethod
    def _sender_shape(cls, value: str | None) -> str | None:
        if value is not None and not is_valid_sender(value):
            raise ValueError("sender must be E.164 or 1-11 letters, digits and spaces")
        return value

    @model_validator(mode="after")
    def _preset_needs(self) -> Self:
        if self.preset == "twilio":
            if self.account_sid is None or not _TWILIO_SID.fullmatch(self.account_sid):
                raise ValueError("the twilio preset needs account_sid (AC + 32 hex digits)")
            if self.messaging_service_sid is not None and not _TWILIO_SID.fullmatch(
                self.messaging_service_sid
            ):
                raise ValueError("messaging_service_sid must be MG + 32 hex digits")
        return self


class SmsHttpProvider:
    """Sends one SMS per call through Twilio or a generic JSON gateway, keyed by attempt."""

    name: ClassVar[str] = "sms-http"
    channel: ClassVar[Channel] = Channel.SMS
    Config: ClassVar[type[BaseModel]] = SmsHttpConfig

    def __init__(
        self,
        config: SmsHttpConfig,
        *,
        transport: httpx.BaseTransport | None = None,
        clock: Callable[[], dt.datetime] = _utcnow,
    ) -> None:
        self.config = config
        self._clock = clock
        self._twilio = config.preset == "twilio"
        token = config.token.get_secret_value()
        headers = {"Accept": "application/json", "User-Agent": "parcours-sms-http"}
        if self._twilio:
            self._url = f"{config.base_url}/2010-04-01/Accounts/{config.account_sid}/Messages.json"
            basic = base64.b64encode(f"{config.account_sid}:{token}".encode()).decode("ascii")
            headers["Authorization"] = f"Basic {basic}"
            self._idempotency_header = "I-Twilio-Idempotency-Token"
        else:
            self._url = f"{config.base_url}{config.path}"
            headers["Authorization"] = f"Bearer {token}"
            self._idempotency_header = "Idempotency-Key"
        self._callback_prefix: str | None = None
        if config.status_callback_url is not None:
            separator = "&" if "?" in config.status_callback_url else "?"
            self._callback_prefix = f"{config.status_callback_url}{separator}attempt="
        self._senders: dict[str, bool] = {}
        self._client = httpx.Client(
            headers=headers,
            timeout=httpx.Timeout(config.read_timeout_s, connect=config.connect_timeout_s),
            transport=transport,
            verify=_tls(),
        )

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the kept-alive connection(s) to the gateway."""
        self._client.close()

    def _sender(self, content: MessageContent) -> str:
        sender = self.config.sender or content.creditor.sms_sender
        valid = self._senders.get(sender)
        if valid is None:
            valid = self._senders[sender] = is_valid_sender(sender)
        if not valid:
            raise UnsendableSms("the creditor's sender id is neither E.164 nor alphanumeric")
        return sender

    def build_payload(self, content: MessageContent, body: SmsBody) -> dict[str, str]:
        """The request's fields for this message; raises `UnsendableSms` if it has none."""
        mobile = content.mobile
        if not mobile:
            raise UnsendableSms("no mobile number")
        if _E164.fullmatch(mobile) is None:
            raise UnsendableSms("the mobile number is not in E.164 form")
        text = body.text
        if not text:
            raise UnsendableSms("empty text")
        if not self._twilio:
            return {
                "to": mobile,
                "from": self._sender(content),
                "text": text,
                "reference": content.attempt_id,
            }
        payload = {"To": mobile, "Body": text}
        if self.config.messaging_service_sid is not None:
            payload["MessagingServiceSid"] = self.config.messaging_service_sid
        else:
            payload["From"] = self._sender(content)
        if self._callback_prefix is not None:
            payload["StatusCallback"] = self._callback_prefix + quote(content.attempt_id, "")
        return payload

    def send(self, content: MessageContent, rendered: Rendered) -> SendResult:
        """Send one SMS under `content.attempt_id` and say what the gateway answered."""
        if not isinstance(rendered, SmsBody):
            raise TypeError(f"sms-http sends SmsBody, not {type(rendered).__name__}")
        try:
            payload = self.build_payload(content, rendered)
        except UnsendableSms as exc:
            return self._logged(content, SendResult(Outcome.PERMANENT, detail=str(exc), units=0))
        units = segments(rendered.text)
        if units > self.config.max_segments:
            detail = f"{units} segments, more than the {self.config.max_segments} allowed"
            return self._logged(content, SendResult(Outcome.PERMANENT, detail=detail, units=0))
        headers = {self._idempotency_header: content.attempt_id}
        try:
            if self._twilio:
                response = self._client.post(self._url, data=payload, headers=headers)
            else:
                response = self._client.post(self._url, json=payload, headers=headers)
        except httpx.TransportError as exc:  # timeouts too: the key makes a resend safe
            kind = "timeout" if isinstance(exc, httpx.TimeoutException) else "network"
            detail = f"{kind} ({type(exc).__name__})"
            return self._logged(content, SendResult(Outcome.TRANSIENT, detail=detail, units=0))
        return self._logged(content, self._result(response, units))

    def _result(self, response: httpx.Response, units: int) -> SendResult:
        status = response.status_code
        data = _json_object(response)
        if 200 <= status < 300:
            ref = data.get("sid" if self._twilio else "id")
            return SendResult(
                Outcome.SENT, provider_ref=ref if isinstance(ref, str) else None, units=units
            )
        code = data.get("code")
        detail = f"HTTP {status}"
        if self._twilio and isinstance(code, int):
            detail += f", twilio error {code}"
            if code in TWILIO_ERRORS:
                detail += f": {TWILIO_ERRORS[code]}"
        elif isinstance(code, str) and _ERROR_TOKEN.fullmatch(code):
            detail += f", gateway error {code}"
        if status in (408, 429) or status >= 500 or code == 20429:
            retry_after = _retry_after(response.headers.get("Retry-After"), self._clock())
            return SendResult(Outcome.TRANSIENT, detail=detail, units=0, retry_after=retry_after)
        if status in (401, 403):  # our credentials, not the message
            return SendResult(Outcome.PROVIDER, detail=detail, units=0)
        return SendResult(Outcome.PERMANENT, detail=detail, units=0)

    def _logged(self, content: MessageContent, result: SendResult) -> SendResult:
        if result.outcome is not Outcome.SENT:
            log.warning(
                "sms_not_sent",
                attempt_id=content.attempt_id,
                outcome=str(result.outcome),
                detail=result.detail,
            )
        return result


def _json_object(response: httpx.Response) -> dict[str, Any]:
    try:
        data = response.json()
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def _retry_after(value: str | None, now: dt.datetime) -> dt.timedelta | None:
    """A Retry-After header (seconds or an HTTP date) as a delay, at most a day."""
    if value is None or not (value := value.strip()):
        return None
    if value.isdigit():
        return dt.timedelta(seconds=min(int(value), int(MAX_RETRY_AFTER.total_seconds())))
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return min(max(when - now, dt.timedelta(0)), MAX_RETRY_AFTER)


def parse_status_callback(
    form: Mapping[str, str], *, attempt_id: str | None = None, now: dt.datetime | None = None
) -> DeliveryEvent | None:
    """A Twilio status callback as an event; None for a status that is not an outcome yet
    (queued, sending, sent, accepted, scheduled, canceled ...).

    `attempt_id` is the `attempt` query parameter of the callback URL, when the provider
    set one: it matches a report to its attempt even if the send's reply was lost.
    """
    sid = form.get("MessageSid") or form.get("SmsSid")
    if not sid:
        raise ValueError("not a Twilio status callback: no MessageSid")
    status = (form.get("MessageStatus") or form.get("SmsStatus") or "").strip().lower()
    kind = _STATUS_KINDS.get(status)
    if kind is None:
        return None
    return DeliveryEvent(kind=kind, at=now or _utcnow(), attempt_id=attempt_id, provider_ref=sid)


def _keyword(text: str) -> str:
    """`text` as a keyword: trimmed of spaces and punctuation, accents dropped, upper case."""
    decomposed = unicodedata.normalize("NFKD", text.strip(_KEYWORD_TRIM))
    return "".join(c for c in decomposed if not unicodedata.combining(c)).upper()


def is_opt_out(text: str) -> bool:
    """Whether a reply is an opt-out: the whole message is one keyword ("Stop", "ARRÊT !").

    A keyword inside a sentence ("End of the month I pay") is a reply, not an opt-out.
    """
    return _keyword(text) in OPT_OUT_KEYWORDS


def parse_inbound(form: Mapping[str, str], *, now: dt.datetime | None = None) -> DeliveryEvent:
    """An inbound SMS: OPTED_OUT for that number on an opt-out keyword, else REPLIED."""
    number = form.get("From")
    if not number:
        raise ValueError("not a Twilio inbound message: no From")
    text = form.get("Body", "")
    kind = DeliveryKind.OPTED_OUT if is_opt_out(text) else DeliveryKind.REPLIED
    return DeliveryEvent(kind=kind, at=now or _utcnow(), address=number, text=text)


def twilio_signature(
    url: str, params: Mapping[str, str] | Iterable[tuple[str, str]], auth_token: str
) -> str:
    """Twilio's X-Twilio-Signature for a form post of `params` to `url`.

    Repeated names (``a=1&a=2``) are signed as Twilio's helper libraries do: each distinct
    value once, in sorted order, after its name.
    """
    pairs = params.items() if isinstance(params, Mapping) else params
    values: dict[str, set[str]] = {}
    for key, value in pairs:
        values.setdefault(key, set()).add(value)
    data = url + "".join(key + value for key in sorted(values) for value in sorted(values[key]))
    digest = hmac.new(auth_token.encode(), data.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode("ascii")


def _port_variants(url: str) -> tuple[str, str]:
    """`url` without its port and with one (the default if none), as Twilio may sign either."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port is None:
        default = 443 if parts.scheme == "https" else 80
        return url, urlunsplit(parts._replace(netloc=f"{parts.netloc}:{default}"))
    netloc = parts.netloc.rsplit(":", 1)[0] if host else parts.netloc
    return urlunsplit(parts._replace(netloc=netloc)), url


def verify_twilio_signature(
    url: str,
    params: Mapping[str, str] | Iterable[tuple[str, str]],
    signature: str,
    auth_token: str | SecretStr,
) -> bool:
    """Whether `signature` (X-Twilio-Signature) signs this form post to `url`."""
    token = auth_token.get_secret_value() if isinstance(auth_token, SecretStr) else auth_token
    pairs = list(params.items() if isinstance(params, Mapping) else params)
    given = signature.strip().encode()
    matches = [
        hmac.compare_digest(twilio_signature(candidate, pairs, token).encode(), given)
        for candidate in _port_variants(url)
    ]
    return any(matches)
