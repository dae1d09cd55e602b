"""A real SMTP server on loopback (aiosmtpd) that records what it is sent, for e-mail tests.

`running_server` starts an aiosmtpd `Controller` on 127.0.0.1 and a free port, with a
`RecordingHandler` that keeps each accepted message, counts TCP connections and QUITs, and
misbehaves on request: chosen replies for chosen recipients (451, 550 ...), a dropped
connection right after a message was accepted, a connection lost in the middle of DATA.
`make_certificate` makes a self-signed certificate with the `openssl` CLI for the STARTTLS
and implicit-TLS variants, and `accept_only` an authenticator for AUTH LOGIN/PLAIN.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import subprocess
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

HOST = "127.0.0.1"


@dataclass(frozen=True)
class Received:
    """One message the server accepted."""

    mail_from: str
    rcpt_tos: tuple[str, ...]
    data: bytes
    mail_options: tuple[str, ...]
    tls: bool
    authenticated: bool


@dataclass
class RecordingHandler:
    """Accepts everything unless told otherwise, and remembers it.

    `rcpt_replies` / `data_replies`: recipient → the reply to RCPT / to the end of DATA.
    `close_after`: message numbers (1-based, over the server's life) after whose 250 the
    server closes the connection. `lose_data_for`: recipients whose DATA is cut off (the
    connection closes before any reply; nothing is kept).
    """

    rcpt_replies: dict[str, str] = field(default_factory=dict)
    data_replies: dict[str, str] = field(default_factory=dict)
    close_after: frozenset[int] = frozenset()
    lose_data_for: frozenset[str] = frozenset()
    received: list[Received] = field(default_factory=list)
    quits: int = 0

    async def handle_RCPT(  # noqa: N802 - aiosmtpd's hook name
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        reply = self.rcpt_replies.get(address)
        if reply is not None:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(  # noqa: N802 - aiosmtpd's hook name
        self, server: SMTP, session: Session, envelope: Envelope
    ) -> str:
        recipient = envelope.rcpt_tos[0]
        if recipient in self.lose_data_for:
            assert server.transport is not None
            server.transport.close()
            return "250 OK"  # never reaches the client: the transport is closed
        reply = self.data_replies.get(recipient)
        if reply is not None:
            return reply
        assert isinstance(envelope.content, bytes)
        assert envelope.mail_from is not None
        self.received.append(
            Received(
                mail_from=envelope.mail_from,
                rcpt_tos=tuple(envelope.rcpt_tos),
                data=envelope.content,
                mail_options=tuple(envelope.mail_options),
                tls=session.ssl is not None,
                authenticated=bool(session.authenticated),
            )
        )
        if len(self.received) in self.close_after:
            # Runs after the 250 below is written: the message is accepted, then dropped.
            transport = server.transport
            assert transport is not None
            asyncio.get_running_loop().call_soon(transport.close)
        return "250 OK"

    async def handle_QUIT(  # noqa: N802 - aiosmtpd's hook name
        self, server: SMTP, session: Session, envelope: Envelope
    ) -> str:
        self.quits += 1
        return "221 Bye"


class CountingController(Controller):
    """A controller that counts the TCP connections clients open (one SMTP object each)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.connections = 0

    def factory(self) -> SMTP:
        self.connections += 1
        server: SMTP = super().factory()  # type: ignore[no-untyped-call]
        return server

    def start(self) -> None:
        super().start()
        self.connections = 0  # the controller's own readiness probe does not count


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        port: int = probe.getsockname()[1]
        return port


@contextmanager
def running_server(
    handler: RecordingHandler | None = None, **smtp_parameters: Any
) -> Iterator[tuple[CountingController, RecordingHandler]]:
    """An SMTP server on 127.0.0.1 for the duration of the block.

    `smtp_parameters` go to aiosmtpd's `SMTP` (tls_context, require_starttls,
    authenticator, auth_required, enable_SMTPUTF8, timeout) or its controller (ssl_context
    for implicit TLS).
    """
    handler = handler if handler is not None else RecordingHandler()
    controller = CountingController(
        handler, hostname=HOST, port=free_port(), server_hostname="smtp.test", **smtp_parameters
    )
    controller.start()
    try:
        yield controller, handler
    finally:
        controller.stop()


def make_certificate(directory: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and localhost: (certificate, key) PEM files."""
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(  # noqa: S603 - fixed arguments, our own paths
        [  # noqa: S607 - the openssl CLI from PATH
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=smtp.test",
            "-addext",
            "subjectAltName=IP:127.0.0.1,DNS:localhost",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


def server_tls_context(cert: Path, key: Path) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    return context


def accept_only(
    login: str, password: str
) -> Callable[[SMTP, Session, Envelope, str, Any], AuthResult]:
    """An aiosmtpd authenticator that accepts one login and password (LOGIN or PLAIN)."""

    def authenticate(
        server: SMTP, session: Session, envelope: Envelope, mechanism: str, auth_data: Any
    ) -> AuthResult:
        ok = (
            isinstance(auth_data, LoginPassword)
            and auth_data.login == login.encode()
            and auth_data.password == password.encode()
        )
        return AuthResult(success=ok, handled=False)

    return authenticate
