"""Debtor links: signed, scoped to one case and purpose, short, and expiring."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest
from hypothesis import given
from hypothesis import strategies as st

from parcours.channels.links import LinkError, Links

AT = dt.datetime(2026, 12, 5, 9, 0, tzinfo=dt.UTC)
LINKS = Links("s3cret-for-tests", "https://pay.example/", days=30)
CASE = "01a243dc-8c69-7139-995a-b90736b99094"


@given(st.uuids())
def test_a_link_reads_back_the_case_it_was_made_for(case: uuid.UUID) -> None:
    token = LINKS.token("page", str(case), AT)
    assert LINKS.read("page", token, AT + dt.timedelta(days=29)) == str(case)


def test_the_url_is_short_and_under_the_public_base() -> None:
    url = LINKS.url("opt-out", CASE, AT)
    assert url.startswith("https://pay.example/o/") and len(url) < 85  # fits in an SMS line
    assert LINKS.read("opt-out", url.rsplit("/", 1)[1], AT) == CASE


@given(st.integers(min_value=0, max_value=55), st.sampled_from("AQZaz09-_"))
def test_a_tampered_link_is_refused(position: int, character: str) -> None:
    token = LINKS.token("page", CASE, AT)
    tampered = token[:position] + character + token[position + 1 :]
    if tampered != token:
        with pytest.raises(LinkError):
            LINKS.read("page", tampered, AT)


def test_a_link_for_one_purpose_or_installation_does_not_open_another() -> None:
    token = LINKS.token("opt-out", CASE, AT)
    with pytest.raises(LinkError, match="not valid"):
        LINKS.read("page", token, AT)
    with pytest.raises(LinkError, match="not valid"):
        Links("another-secret", "https://pay.example").read("opt-out", token, AT)


def test_a_link_expires() -> None:
    token = LINKS.token("page", CASE, AT)
    LINKS.read("page", token, AT + dt.timedelta(days=30))
    with pytest.raises(LinkError, match="expired"):
        LINKS.read("page", token, AT + dt.timedelta(days=30, seconds=1))
