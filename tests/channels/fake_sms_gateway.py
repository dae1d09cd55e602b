"""A real HTTP server on 127.0.0.1 speaking the SMS gateway APIs the sms-http provider uses.

It speaks the subset of Twilio's Messages API we call (form-encoded ``To``, ``From`` or
``MessagingServiceSid``, ``Body``, ``StatusCallback``; HTTP Basic auth; Twilio's error
JSON ``code``/``message``/``more_info``/``status``) and the generic JSON gateway (bearer
token, ``to``/``from``/``text``/``reference``, reply ``id``). It checks credentials,
records every message it accepts, honours the idempotency header (the same token twice
gets the same reply and the message is recorded once), counts TCP connections, can be
told to fail, or to stall after accepting, the next requests, and posts signed status
callbacks and inbound messages the way Twilio does. Its signing code is its own, written
from Twilio's documentation, so that it checks the provider's rather than mirroring it.

`WebhookReceiver` is the other side: a loopback server standing for our web app, which
records the webhooks it is sent.
"""

from __future__ import annotations

import base64
import datetime as dt
import email.utils
import hashlib
import hmac
import json
import re
import secrets
import ssl
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal
from urllib.parse import parse_qsl, urlencode

import httpx

ACCOUNT_SID = "AC" + "1f" * 16
AUTH_TOKEN = "fake-twilio-auth-token"
API_TOKEN = "fake-generic-bearer-token"
GENERIC_PATH = "/v1/messages"

_TWILIO_PATH = re.compile(r"/2010-04-01/Accounts/(AC[0-9a-f]{32})/Messages\.json")
_E164 = re.compile(r"\+[1-9][0-9]{1,14}")
_TWILIO_MESSAGES = {
    20003: "Authenticate",
    20404: "The requested resource was not found",
    20429: "Too Many Requests",
    20500: "Internal Server Error",
    21211: "The 'To' number is not a valid phone number.",
    21602: "Message body is required.",
    21603: "A 'From' phone number is required.",
    21604: "A 'To' phone number is required.",
    21610: "Attempt to send to unsubscribed recipient",
    21617: "The concatenated message body exceeds the 1600 character limit.",
}


@dataclass(frozen=True)
class Message:
    """One message the gateway accepted."""

    api: Literal["twilio", "generic"]
    ref: str  # the sid (twilio) or id (generic) the gateway answered with
    to: str
    sender: str  # From, or the MessagingServiceSid
    text: str
    status_callback: str | None
    idempotency_key: str | None


@dataclass
class _Failure:
    status: int
    code: int | str | None
    retry_after: str | None


@dataclass
class _State:
    lock: threading.Lock = field(default_factory=threading.Lock)
    messages: list[Message] = field(default_factory=list)
    replies: dict[str, tuple[int, bytes]] = field(default_factory=dict)  # by idempotency key
    failures: list[_Failure] = field(default_factory=list)
    stalls: list[float] = field(default_factory=list)
    refused: dict[str, int] = field(default_factory=dict)  # number → Twilio error code
    connections: int = 0
    requests: int = 0


class FakeSmsGateway:
    """Twilio's Messages API subset and a generic JSON SMS API, on a random loopback port."""

    def __init__(
        self,
        *,
        account_sid: str = ACCOUNT_SID,
        auth_token: str = AUTH_TOKEN,
        api_token: str = API_TOKEN,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self.account_sid = account_sid
        self.auth_token = auth_token
        self.api_token = api_token
        self._state = _State()
        gateway = self

        class Handler(_GatewayHandler):
            owner = gateway

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._server.block_on_close = False  # kept-alive client connections may stay open
        self._scheme = "http"
        if tls is not None:  # a server certificate for 127.0.0.1 (the benchmark makes one)
            self._server.socket = tls.wrap_socket(self._server.socket, server_side=True)
            self._scheme = "https"
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.01,), daemon=True
        )

    # -- lifecycle -------------------------------------------------------------------
    def start(self) -> FakeSmsGateway:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> FakeSmsGateway:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"{self._scheme}://{host!s}:{port}"

    # -- what happened ---------------------------------------------------------------
    @property
    def messages(self) -> list[Message]:
        with self._state.lock:
            return list(self._state.messages)

    @property
    def connections(self) -> int:
        """TCP connections accepted so far."""
        with self._state.lock:
            return self._state.connections

    @property
    def requests(self) -> int:
        with self._state.lock:
            return self._state.requests

    # -- what to do next -------------------------------------------------------------
    def fail_next(
        self,
        count: int,
        status: int,
        *,
        code: int | str | None = None,
        retry_after: str | None = None,
    ) -> None:
        """Answer the next `count` authenticated requests with `status` (and error `code`)."""
        with self._state.lock:
            self._state.failures.extend(_Failure(status, code, retry_after) for _ in range(count))

    def stall_next(self, seconds: float) -> None:
        """Accept the next message but wait `seconds` before answering (a lost reply)."""
        with self._state.lock:
            self._state.stalls.append(seconds)

    def opt_out(self, number: str) -> None:
        """`number` replied STOP: Twilio refuses to send to it (error 21610)."""
        with self._state.lock:
            self._state.refused[number] = 21610

    def no_such_number(self, number: str) -> None:
        """`number` is well formed but assigned to nobody: Twilio answers error 21211."""
        with self._state.lock:
            self._state.refused[number] = 21211

    # -- webhooks Twilio sends -------------------------------------------------------
    def sign(self, url: str, form: dict[str, str]) -> str:
        """X-Twilio-Signature: base64 HMAC-SHA1 of the URL then each name and value, sorted."""
        data = url + "".join(name + form[name] for name in sorted(form))
        mac = hmac.new(self.auth_token.encode(), data.encode(), hashlib.sha1)
        return base64.b64encode(mac.digest()).decode()

    def _post_webhook(self, url: str, form: dict[str, str]) -> httpx.Response:
        headers = {
            "X-Twilio-Signature": self.sign(url, form),
            "I-Twilio-Idempotency-Token": secrets.token_hex(16),
            "User-Agent": "TwilioProxy/1.1",
        }
        # Webhooks go to plain HTTP on loopback: a context trusting no CA is enough (and
        # costs nothing to build, unlike one loading the CA bundle).
        tls = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        with httpx.Client(verify=tls, timeout=5) as client:
            return client.post(url, data=form, headers=headers)

    def post_status_callback(
        self, ref: str, status: str, *, error_code: str | None = None
    ) -> httpx.Response:
        """Post a status callback for the message `ref` to its StatusCallback URL."""
        message = next(m for m in self.messages if m.ref == ref)
        if message.status_callback is None:
            raise LookupError("that message asked for no status callback")
        form = {
            "AccountSid": self.account_sid,
            "ApiVersion": "2010-04-01",
            "From": message.sender,
            "MessageSid": ref,
            "MessageStatus": status,
            "SmsSid": ref,
            "SmsStatus": status,
            "To": message.to,
        }
        if error_code is not None:
            form["ErrorCode"] = error_code
        return self._post_webhook(message.status_callback, form)

    def post_inbound(self, url: str, *, sender: str, to: str, body: str) -> httpx.Response:
        """Post an inbound SMS from `sender` to our number `to`, as Twilio's webhook does."""
        sid = "SM" + secrets.token_hex(16)
        form = {
            "AccountSid": self.account_sid,
            "ApiVersion": "2010-04-01",
            "Body": body,
            "From": sender,
            "MessageSid": sid,
            "NumMedia": "0",
            "NumSegments": "1",
            "SmsMessageSid": sid,
            "SmsSid": sid,
            "SmsStatus": "received",
            "To": to,
        }
        return self._post_webhook(url, form)


class _GatewayHandler(BaseHTTPRequestHandler):
    owner: FakeSmsGateway
    protocol_version = "HTTP/1.1"  # keep-alive, so that connection reuse is visible
    disable_nagle_algorithm = True  # else each reply waits for a delayed ACK (40 ms)
    wbufsize = 64 * 1024  # headers and body leave in one segment

    def setup(self) -> None:
        super().setup()
        with self.owner._state.lock:
            self.owner._state.connections += 1

    def log_message(self, format: str, *args: Any) -> None:
        pass

    # -- plumbing --------------------------------------------------------------------
    def _body(self) -> bytes:
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _reply(self, status: int, payload: bytes, extra: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        for name, value in (extra or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(payload)

    def _twilio_error(
        self, status: int, code: int, extra: dict[str, str] | None = None, *, number: str = ""
    ) -> None:
        message = _TWILIO_MESSAGES.get(code, "Error")
        if number:  # as Twilio does, which is why the provider never quotes the message
            message = message.replace("number", f"number {number}", 1)
        error = {
            "code": code,
            "message": message,
            "more_info": f"https://www.twilio.com/docs/errors/{code}",
            "status": status,
        }
        self._reply(status, json.dumps(error).encode(), extra)

    def _generic_error(self, status: int, code: str, extra: dict[str, str] | None = None) -> None:
        self._reply(status, json.dumps({"code": code, "message": code}).encode(), extra)

    def _next_failure(self) -> _Failure | None:
        state = self.owner._state
        with state.lock:
            return state.failures.pop(0) if state.failures else None

    def _replayed(self, key: str | None) -> bool:
        if key is None:
            return False
        with self.owner._state.lock:
            reply = self.owner._state.replies.get(key)
        if reply is None:
            return False
        self._reply(*reply)
        return True

    def _accept(self, message: Message, status: int, payload: bytes) -> None:
        state = self.owner._state
        with state.lock:
            if message.idempotency_key is not None:
                if message.idempotency_key in state.replies:  # a concurrent twin won
                    status, payload = state.replies[message.idempotency_key]
                else:
                    state.replies[message.idempotency_key] = (status, payload)
                    state.messages.append(message)
            else:
                state.messages.append(message)
            stall = state.stalls.pop(0) if state.stalls else 0.0
        if stall:
            time.sleep(stall)
        self._reply(status, payload)

    # -- routes ----------------------------------------------------------------------
    def do_POST(self) -> None:
        body = self._body()
        with self.owner._state.lock:
            self.owner._state.requests += 1
        path = self.path.split("?", 1)[0]
        if match := _TWILIO_PATH.fullmatch(path):
            self._twilio(match.group(1), body)
        elif path == GENERIC_PATH:
            self._generic(body)
        else:
            self._twilio_error(404, 20404)

    def do_GET(self) -> None:
        self._twilio_error(405, 20004)

    def _twilio(self, account_sid: str, raw: bytes) -> None:
        owner = self.owner
        expected = base64.b64encode(f"{owner.account_sid}:{owner.auth_token}".encode()).decode()
        authorization = self.headers.get("Authorization", "")
        if account_sid != owner.account_sid or not hmac.compare_digest(
            authorization.encode(), f"Basic {expected}".encode()
        ):
            self._twilio_error(401, 20003)
            return
        if failure := self._next_failure():
            extra = {"Retry-After": failure.retry_after} if failure.retry_after else None
            default = 20429 if failure.status == 429 else 20500
            code = failure.code if isinstance(failure.code, int) else default
            self._twilio_error(failure.status, code, extra)
            return
        key = self.headers.get("I-Twilio-Idempotency-Token")
        if self._replayed(key):
            return
        if not self.headers.get("Content-Type", "").startswith("application/x-www-form-urlencoded"):
            self._twilio_error(400, 21602)
            return
        form = dict(parse_qsl(raw.decode(), keep_blank_values=True))
        to, text = form.get("To", ""), form.get("Body", "")
        sender = form.get("MessagingServiceSid") or form.get("From", "")
        if not to:
            self._twilio_error(400, 21604)
        elif not _E164.fullmatch(to):
            self._twilio_error(400, 21211, number=to)
        elif not text:
            self._twilio_error(400, 21602)
        elif not sender:
            self._twilio_error(400, 21603)
        elif len(text) > 1600:
            self._twilio_error(400, 21617)
        elif (refusal := owner._state.refused.get(to)) is not None:
            self._twilio_error(400, refusal, number=to if refusal == 21211 else "")
        else:
            sid = "SM" + secrets.token_hex(16)
            now = email.utils.format_datetime(dt.datetime.now(dt.UTC))
            resource = {
                "account_sid": account_sid,
                "api_version": "2010-04-01",
                "body": text,
                "date_created": now,
                "date_sent": None,
                "date_updated": now,
                "direction": "outbound-api",
                "error_code": None,
                "error_message": None,
                "from": form.get("From"),
                "messaging_service_sid": form.get("MessagingServiceSid"),
                "num_media": "0",
                "sid": sid,
                "status": "accepted" if "MessagingServiceSid" in form else "queued",
                "to": to,
                "uri": f"/2010-04-01/Accounts/{account_sid}/Messages/{sid}.json",
            }
            message = Message("twilio", sid, to, sender, text, form.get("StatusCallback"), key)
            self._accept(message, 201, json.dumps(resource).encode())

    def _generic(self, raw: bytes) -> None:
        if not hmac.compare_digest(
            self.headers.get("Authorization", "").encode(),
            f"Bearer {self.owner.api_token}".encode(),
        ):
            self._generic_error(401, "unauthorized")
            return
        if failure := self._next_failure():
            extra = {"Retry-After": failure.retry_after} if failure.retry_after else None
            self._generic_error(failure.status, str(failure.code or "unavailable"), extra)
            return
        key = self.headers.get("Idempotency-Key")
        if self._replayed(key):
            return
        try:
            data = json.loads(raw)
        except ValueError:
            self._generic_error(400, "invalid_json")
            return
        fields = {name: data.get(name) for name in ("to", "from", "text", "reference")}
        if not all(isinstance(value, str) and value for value in fields.values()):
            self._generic_error(400, "missing_field")
        elif not _E164.fullmatch(fields["to"]):
            self._generic_error(400, "invalid_number")
        else:
            ref = "msg_" + secrets.token_hex(12)
            message = Message(
                "generic", ref, fields["to"], fields["from"], fields["text"], None, key
            )
            self._accept(message, 202, json.dumps({"id": ref, "status": "accepted"}).encode())


@dataclass(frozen=True)
class Webhook:
    path: str  # with its query string, as requested
    headers: dict[str, str]
    form: dict[str, str]


class WebhookReceiver:
    """Our web app's side of Twilio's webhooks, on a random loopback port: records posts."""

    def __init__(self) -> None:
        self.received: list[Webhook] = []
        self._arrived = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                webhook = Webhook(self.path, dict(self.headers), dict(parse_qsl(raw.decode())))
                with receiver._arrived:
                    receiver.received.append(webhook)
                    receiver._arrived.notify_all()
                self.send_response(204)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.01,), daemon=True
        )

    def url(self, path: str, **query: str) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}{path}" + (f"?{urlencode(query)}" if query else "")

    def __enter__(self) -> WebhookReceiver:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._server.shutdown()
        self._server.server_close()


def running_gateway() -> Iterator[FakeSmsGateway]:
    """A started gateway, stopped afterwards (for fixtures and the benchmark)."""
    with FakeSmsGateway() as gateway:
        yield gateway
