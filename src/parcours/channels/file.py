"""The embedded provider: every message written, as it would be sent, to the outbox folder.

E-mail as a real `.eml` (the same MIME message the SMTP provider sends), SMS as the JSON
a gateway would receive (text, encoding, segments), letters as the PDF a mail house would
print, call scripts as text — one file per attempt id, so a person can open what would
have gone out. A file is written under a temporary name and linked into place: linking
fails if the attempt was written before, so a retry after a crash never writes twice.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import ClassVar

from pydantic import BaseModel, ConfigDict

from parcours.channels import gsm
from parcours.channels.base import Outcome, SendResult
from parcours.channels.content import (
    EmailBody,
    LetterBody,
    MessageContent,
    PhoneScript,
    Rendered,
    SmsBody,
)

__all__ = ["FileConfig", "FileOutbox", "write_once"]


class FileConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    directory: Path = Path("outbox")
    domain: str = "parcours.invalid"  # right-hand side of the e-mails' Message-IDs


def write_once(path: Path, data: bytes) -> bool:
    """Write `data` at `path` unless something is there already (True when written now).

    The content goes to a temporary file first and is hard-linked into place, which is
    atomic and refuses an existing name: never a half-written file, never a second one,
    whatever process dies when. (No fsync per message: a power cut may lose the last
    files, as it may lose the last commit; it never makes a second one.)
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=".writing-")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        try:
            os.link(temporary, path)
        except FileExistsError:
            return False
        return True
    finally:
        os.unlink(temporary)


class FileOutbox:
    """Writes each message to `<directory>/<attempt id>.<eml|sms.json|pdf|call.txt>`."""

    name: ClassVar[str] = "file"
    Config: ClassVar[type[BaseModel]] = FileConfig

    def __init__(self, config: FileConfig | None = None) -> None:
        self.config = config or FileConfig()

    def send(self, content: MessageContent, rendered: Rendered) -> SendResult:
        name, data, units = self._render(content, rendered)
        written = write_once(self.config.directory / f"{content.attempt_id}.{name}", data)
        return SendResult(
            Outcome.SENT,
            provider_ref=f"file:{content.attempt_id}.{name}",
            detail=None if written else "already written",
            units=units,
        )

    def _render(self, content: MessageContent, rendered: Rendered) -> tuple[str, bytes, int]:
        if isinstance(rendered, EmailBody):
            from parcours.channels.email import build_email

            message = build_email(content, rendered, domain=self.config.domain)
            return "eml", bytes(message), 1
        if isinstance(rendered, SmsBody):
            segments = gsm.segments(rendered.text)
            payload = {
                "attempt_id": content.attempt_id,
                "to": content.mobile,
                "from": content.creditor.sms_sender,
                "text": rendered.text,
                "encoding": gsm.encoding(rendered.text),
                "segments": segments,
            }
            return "sms.json", json.dumps(payload, ensure_ascii=False, indent=2).encode(), segments
        if isinstance(rendered, LetterBody):
            from parcours.channels.letter import render_letter_pdf

            pdf = render_letter_pdf(content, rendered)
            return "pdf", pdf.pdf, pdf.pages
        assert isinstance(rendered, PhoneScript)
        lines = [rendered.title, "", *rendered.lines]
        return "call.txt", "\n".join(lines).encode(), 1

    def close(self) -> None:
        return None
