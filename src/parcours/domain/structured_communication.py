"""Belgian structured communication (OGM/VCS): `+++ddd/dddd/ddddd+++`, mod-97 checked.

Twelve digits: a ten-digit base and a two-digit check, the base modulo 97 (97 when the
remainder is 0). Febelfin, "AOS-OGMVCS".
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from parcours.domain.errors import InvalidStructuredCommunication

__all__ = ["StructuredCommunication", "structured_communication_digits"]

_MAX_BASE = 10**10 - 1
_NON_DIGITS = re.compile(r"[\s+*/]")


def _check_digits(base: int) -> int:
    return base % 97 or 97


def structured_communication_digits(base: int) -> str:
    """The twelve digits for a base known to be in range (the bulk import's fast path)."""
    return f"{base:010d}{_check_digits(base):02d}"


@dataclass(frozen=True, slots=True)
class StructuredCommunication:
    """A valid structured communication, held as its twelve digits."""

    digits: str

    def __post_init__(self) -> None:
        if len(self.digits) != 12 or not (self.digits.isascii() and self.digits.isdigit()):
            raise InvalidStructuredCommunication(f"{self.digits!r} is not twelve digits")
        base, check = int(self.digits[:10]), int(self.digits[10:])
        if _check_digits(base) != check:
            raise InvalidStructuredCommunication(
                f"{self.formatted} fails the mod-97 check (expected {_check_digits(base):02d})"
            )

    @classmethod
    def from_base(cls, base: int) -> StructuredCommunication:
        """The communication for a ten-digit base number (0 ≤ base < 10^10)."""
        if not 0 <= base <= _MAX_BASE:
            raise InvalidStructuredCommunication(f"base {base} is outside 0..{_MAX_BASE}")
        return cls(structured_communication_digits(base))

    @classmethod
    def parse(cls, text: str) -> StructuredCommunication:
        """Accept `+++123/4567/89002+++`, `***…***` or the bare twelve digits."""
        return cls(_NON_DIGITS.sub("", text))

    @property
    def base(self) -> int:
        return int(self.digits[:10])

    @property
    def formatted(self) -> str:
        d = self.digits
        return f"+++{d[:3]}/{d[3:7]}/{d[7:]}+++"

    def __str__(self) -> str:
        return self.formatted
