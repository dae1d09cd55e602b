"""The file outbox: each message written once, whole, under its attempt id."""

from __future__ import annotations

import json
from email import message_from_bytes
from email.policy import default
from pathlib import Path

import pytest

from parcours.channels.base import Outcome
from parcours.channels.content import Channel
from parcours.channels.file import FileConfig, FileOutbox, write_once
from parcours.channels.render import get_renderer
from tests.channels.conftest import make_content


def test_a_file_that_appears_meanwhile_is_never_overwritten(tmp_path: Path) -> None:
    target = tmp_path / "attempt.pdf"
    assert write_once(target, b"first")
    assert not write_once(target, b"second")
    assert target.read_bytes() == b"first"
    assert [p.name for p in tmp_path.iterdir()] == ["attempt.pdf"]  # no temporary left


@pytest.mark.parametrize(
    ("channel", "suffix"),
    [(Channel.EMAIL, "eml"), (Channel.SMS, "sms.json"), (Channel.LETTER, "pdf")],
)
def test_each_channel_is_written_as_it_would_be_sent_once(
    tmp_path: Path, channel: Channel, suffix: str
) -> None:
    outbox = FileOutbox(FileConfig(directory=tmp_path, domain="acme.example"))
    content = make_content(channel=channel)
    rendered = get_renderer().render(content)
    first = outbox.send(content, rendered)
    again = outbox.send(content, rendered)
    assert first.outcome is again.outcome is Outcome.SENT
    assert first.detail is None and again.detail == "already written"
    (path,) = tmp_path.iterdir()
    assert path.name == f"{content.attempt_id}.{suffix}"
    data = path.read_bytes()
    if channel is Channel.EMAIL:
        message = message_from_bytes(data, policy=default)
        assert message["Message-ID"] == f"<{content.attempt_id}@acme.example>"
    elif channel is Channel.SMS:
        sms = json.loads(data)
        assert sms["to"] == "+32470123456" and sms["segments"] == first.units
        assert "+++123/4567/89002+++" in sms["text"]
    else:
        assert data.startswith(b"%PDF") and first.units >= 1
