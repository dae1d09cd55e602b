"""How the back office shows times, deadlines and amounts (filters of its templates)."""

from __future__ import annotations

import datetime as dt
import zoneinfo
from typing import Any

import jinja2

__all__ = ["countdown", "install_filters", "iso", "local_time", "parse_date"]


def countdown(due: dt.datetime, now: dt.datetime) -> str:
    """What is left until an answer deadline, or how late it is ("2 h 05 min left")."""
    seconds = int((due - now).total_seconds())
    spoken = _duration(abs(seconds))
    return f"{spoken} left" if seconds >= 0 else f"overdue by {spoken}"


def _duration(seconds: int) -> str:
    # Mirrors static/inbox.js, which ticks the same text in the browser.
    minutes = seconds // 60
    days, rest = divmod(minutes, 24 * 60)
    hours, minutes = divmod(rest, 60)
    if days:
        return f"{days} d {hours} h"
    if hours:
        return f"{hours} h {minutes:02d} min"
    return f"{minutes} min"


def iso(moment: dt.datetime | None) -> str:
    """A UTC instant as the `datetime` attribute of a <time> element."""
    if moment is None:
        return ""
    return moment.astimezone(dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def local_time(moment: Any, zone: str) -> str:
    """A time as agents read it, in the back office's time zone; dates as they are."""
    if moment is None:
        return "—"
    if isinstance(moment, dt.datetime):
        return f"{moment.astimezone(zoneinfo.ZoneInfo(zone)):%Y-%m-%d %H:%M}"
    if isinstance(moment, dt.date):
        return moment.isoformat()
    return str(moment)


def parse_date(text: str, field: str) -> dt.date:
    """A date typed in a form (YYYY-MM-DD), or a ValueError naming the field."""
    try:
        return dt.date.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(f"{field}: give a date like 2026-12-31") from None


def install_filters(env: jinja2.Environment, zone: str) -> None:
    env.filters["when"] = lambda moment: local_time(moment, zone)
    env.filters["iso"] = iso
    env.globals["countdown"] = countdown
