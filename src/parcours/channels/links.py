"""A debtor's personal links: signed, expiring, scoped to one case and one purpose.

Every message carries links to the debtor's page (pay, promise, plan, chat) and to opt out.
A link's token is the case id (16 bytes, base64url) signed with the installation's secret
key and a timestamp (itsdangerous, HMAC; the salt names the purpose, so an opt-out token
never opens a page): about 60 characters, short enough for an SMS. It is refused once
older than its validity. It holds no personal data; the page still asks a light second
factor before showing anything, and finds the case's creditor from the case itself.
"""

from __future__ import annotations

import base64
import datetime as dt
import uuid
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from itsdangerous import BadSignature, SignatureExpired, TimestampSigner

__all__ = ["LinkError", "Links", "Purpose"]

Purpose = Literal["page", "opt-out"]
_PATHS: Final = {"page": "p", "opt-out": "o"}
_SIGNERS: Final = 256  # signers kept per Links (a page check signs at each request's second)


class LinkError(ValueError):
    """A token that is forged, for another purpose, or expired."""


class _ClockSigner(TimestampSigner):
    """A timestamp signer that reads the caller's clock (clock travel in ticks and tests),
    and derives its key once rather than at every signature."""

    def __init__(self, *args: Any, now: int, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._now = now
        self._key = super().derive_key()

    def get_timestamp(self) -> int:
        return self._now

    def derive_key(self, secret_key: str | bytes | None = None) -> bytes:
        if secret_key is None or secret_key == self.secret_key:
            return self._key
        return super().derive_key(secret_key)


@dataclass(frozen=True)
class Links:
    """Makes and checks the links of one installation."""

    secret: str
    base_url: str
    days: int = 90
    # Signers by (purpose, second): a batch of messages signs at one clock time.
    _signers: dict[tuple[str, int], _ClockSigner] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    def _signer(self, purpose: Purpose, at: dt.datetime) -> _ClockSigner:
        now = int(at.timestamp())
        signer = self._signers.get((purpose, now))
        if signer is None:
            if len(self._signers) >= _SIGNERS:
                self._signers.clear()
            signer = _ClockSigner(self.secret, salt=f"parcours.{purpose}", now=now)
            self._signers[(purpose, now)] = signer
        return signer

    def token(self, purpose: Purpose, case: str, at: dt.datetime) -> str:
        """A token for the case (its UUID as text), signed as of `at` (the tick's clock)."""
        value = base64.urlsafe_b64encode(uuid.UUID(case).bytes).rstrip(b"=")
        return self._signer(purpose, at).sign(value).decode()

    def url(self, purpose: Purpose, case: str, at: dt.datetime) -> str:
        return f"{self.base_url.rstrip('/')}/{_PATHS[purpose]}/{self.token(purpose, case, at)}"

    def read(self, purpose: Purpose, token: str, now: dt.datetime) -> str:
        """The case id (UUID text) of a valid token at `now`, else LinkError saying why."""
        try:
            value = self._signer(purpose, now).unsign(token, max_age=self.days * 86_400)
            return str(uuid.UUID(bytes=base64.urlsafe_b64decode(value + b"==")))
        except SignatureExpired as error:
            raise LinkError("this link has expired") from error
        except (BadSignature, ValueError) as error:
            raise LinkError("this link is not valid") from error
