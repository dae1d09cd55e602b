"""Fixtures of the command-line tests: a clean working directory and environment."""

from __future__ import annotations

import gc
import os
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog

from parcours.settings import get_settings


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A clean working directory and environment; settings and logging reset around the test."""
    monkeypatch.chdir(tmp_path)
    for name in [n for n in os.environ if n.startswith("PARCOURS_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("COLUMNS", "200")  # Rich wraps at 80 columns otherwise
    logging_config = structlog.get_config()
    get_settings.cache_clear()
    # The CLI leaves its engines to the garbage collector (see
    # test_commands_close_their_database_connections); collect only at the end, quietly, so
    # that leak fails that one test rather than whichever test the collector happens to hit.
    collecting = gc.isenabled()
    gc.disable()
    yield tmp_path
    get_settings.cache_clear()
    structlog.configure(**logging_config)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        gc.collect()
    if collecting:
        gc.enable()


@pytest.fixture
def cli_db(cli: Path, db_url: str, monkeypatch: pytest.MonkeyPatch) -> Path:
    """`cli`, pointed at an empty migrated database of each kind."""
    monkeypatch.setenv("PARCOURS_DATABASE_URL", db_url)
    return cli
