"""Case facts as columns: what the planner and the guards read, one entry per case.

The store fills them in bulk for the cases due in a tick; tests and the simulator build
them directly. Times are UTC seconds since the epoch, days are days since 1970-01-01;
-1 (or 0 for times) means "none".
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field, fields
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from parcours.domain.journey import JourneyEvent

__all__ = [
    "CHANNEL_BITS",
    "EVENT_INDEX",
    "CaseFacts",
    "Delivery",
    "PlanState",
    "PromiseCode",
]

I64 = npt.NDArray[np.int64]
B = npt.NDArray[np.bool_]

# Reachable channels (a contact point exists and is not opted out) as a bit mask.
CHANNEL_BITS: Final = {"email": 1, "sms": 2, "letter": 4, "phone": 8, "chat": 16}
EVENT_INDEX: Final = {event: i for i, event in enumerate(JourneyEvent)}


class Delivery(enum.IntEnum):
    """What happened to the last message sent to the case."""

    NONE = 0
    SENT = 1
    DELIVERED = 2
    BOUNCED = 3
    OPENED = 4
    CLICKED = 5


class PromiseCode(enum.IntEnum):
    NONE = 0
    PENDING = 1
    KEPT = 2
    BROKEN = 3


class PlanState(enum.IntEnum):
    NONE = 0
    ACTIVE = 1
    MISSED = 2  # an instalment is late
    BROKEN = 3


def _ints(n: int, fill: int = 0) -> I64:
    return np.full(n, fill, dtype=np.int64)


@dataclass
class CaseFacts:
    """Columns of facts; build with `CaseFacts.empty(n)` and fill, or `CaseFacts.of(...)`."""

    case_key: list[str]  # stable id of the case (its UUID as text): seeds sticky splits
    balance_minor: I64
    due_day: I64  # oldest open due date
    promise_day: I64  # pending promise's date, -1 when none
    promise: I64  # PromiseCode
    plan: I64  # PlanState
    persona: list[str | None]
    reachable: I64  # CHANNEL_BITS mask
    last_delivery: I64  # Delivery
    reminders_sent: I64
    responses: I64  # replies and clicks since enrolment
    disputed: B
    legal_hold: B
    contact_objection: B
    vulnerable: B
    question_open: B  # the debtor asked (chat) and no agent has answered yet
    preferred: I64  # CHANNEL_BITS of the channel the debtor asked to be tried first, 0: none
    pre_due_declined: B  # the debtor asked for no reminder before the due date
    pre_due_asked: B  # the debtor asked for reminders before due dates
    # Last time each JourneyEvent happened (columns in EVENT_INDEX order), 0 = never.
    event_at: npt.NDArray[np.int64] = field(default_factory=lambda: np.zeros((0, 0), np.int64))

    def __len__(self) -> int:
        return len(self.case_key)

    @classmethod
    def empty(cls, case_keys: list[str]) -> CaseFacts:
        n = len(case_keys)
        return cls(
            case_key=case_keys,
            balance_minor=_ints(n),
            due_day=_ints(n),
            promise_day=_ints(n, -1),
            promise=_ints(n),
            plan=_ints(n),
            persona=[None] * n,
            reachable=_ints(n),
            last_delivery=_ints(n),
            reminders_sent=_ints(n),
            responses=_ints(n),
            disputed=np.zeros(n, bool),
            legal_hold=np.zeros(n, bool),
            contact_objection=np.zeros(n, bool),
            vulnerable=np.zeros(n, bool),
            question_open=np.zeros(n, bool),
            preferred=_ints(n),
            pre_due_declined=np.zeros(n, bool),
            pre_due_asked=np.zeros(n, bool),
            event_at=np.zeros((n, len(EVENT_INDEX)), np.int64),
        )

    def take(self, index: I64) -> CaseFacts:
        """The facts of the cases at `index` (a copy)."""
        values: dict[str, Any] = {}
        for f in fields(self):
            column = getattr(self, f.name)
            if isinstance(column, list):
                values[f.name] = [column[i] for i in index.tolist()]
            else:
                values[f.name] = column[index]
        return CaseFacts(**values)
