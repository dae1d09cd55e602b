"""Schemathesis against the API's own OpenAPI document (SQLite): whatever it sends, valid
or not, the API answers without a 5xx and as its document says (status, content type,
headers, body schema). Bounded to 25 examples per operation."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from fastapi.routing import APIRoute
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import SecretStr
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from parcours.settings import Settings
from parcours.store.db import connect
from parcours.web.api import api_router, build_api_app
from tests.runtime.test_tick import START, load
from tests.web.test_api import Clock, creditor_id, make_key

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]


@pytest.fixture
def api_app(sqlite_template: Path, tmp_path: Path) -> Iterator[tuple[Any, str]]:
    """The API on a loaded SQLite portfolio (cases C-D1..C-D3) and a key of every scope."""
    path = tmp_path / "parcours.db"
    shutil.copyfile(sqlite_template, path)
    engine = connect(f"sqlite:///{path}")
    load(engine, tmp_path)
    key = make_key(engine, creditor_id(engine, "acme"), "read", "write", "payments")
    settings = Settings(
        database_url=f"sqlite:///{path}",
        secret_key=SecretStr("test-secret"),
        channels_file=tmp_path / "none.yaml",
    )
    yield build_api_app(engine, settings, clock=Clock(START)), key
    engine.dispose()


OPERATIONS = sorted(
    (method, route.path)
    for route in api_router.routes
    if isinstance(route, APIRoute)
    for method in route.methods
)


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
@pytest.mark.parametrize(("method", "path"), OPERATIONS, ids=[f"{m} {p}" for m, p in OPERATIONS])
def test_the_api_answers_every_request_as_documented(
    api_app: tuple[Any, str], method: str, path: str, mode: GenerationMode
) -> None:
    app, key = api_app
    operation = schemathesis.openapi.from_asgi("/openapi.json", app)[path][method]
    cases = operation.as_strategy(mode)
    if "{case_ref}" in path:  # half the time a case that exists, to get past the 404
        cases = st.one_of(cases, operation.as_strategy(mode, path_parameters={"case_ref": "C-D1"}))

    @given(cases)
    @settings(
        max_examples=25,
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    )
    def answers_as_documented(case: Any) -> None:
        case.call_and_validate(headers={"Authorization": f"Bearer {key}"}, checks=CHECKS)

    answers_as_documented()
