"""Benchmark: the channels' hot paths, one JSON line.

Runs the three channel benchmarks, each in its own process (their sinks and pools must not
share a GIL with each other), and gathers their figures with the issue's targets:

- e-mail: ≥ 1,000 e-mails/s to a local SMTP sink with connection reuse, against one
  connection per message (`bench/dispatch_email.py`);
- letters: ≥ 20 letter pages/s rendered to PDF, against one document per letter
  (`bench/dispatch_letter.py`);
- SMS: ≥ 50,000 payloads/s built, against a naive builder (`bench/dispatch_sms.py`).

    python bench/dispatch.py
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).parent
TARGETS = {"email": 1_000, "letter": 20, "sms": 50_000}


def run(script: str, *args: str) -> dict[str, Any]:
    output = subprocess.run(
        [sys.executable, str(HERE / script), *args], check=True, capture_output=True, text=True
    ).stdout
    return dict(json.loads(output.strip().splitlines()[-1]))


def main() -> None:
    email = run("dispatch_email.py")
    letter = run("dispatch_letter.py")
    sms = run("dispatch_sms.py")
    print(
        json.dumps(
            {
                "bench": "dispatch",
                "targets": TARGETS,
                "email": email,
                "letter": letter,
                "sms": sms,
            }
        )
    )


if __name__ == "__main__":
    main()
