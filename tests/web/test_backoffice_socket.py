"""The agent's live chat over real sockets: the app under uvicorn on a loopback port, a
debtor's page socket and a signed-in agent's inbox socket (the `websockets` client), a
question and its answer in both directions, and the agent counted online meanwhile."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr
from sqlalchemy import Engine
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed
from websockets.typing import Origin

from parcours.channels.links import Links
from parcours.settings import Settings
from parcours.store.schema import AuditRow, CaseRow, ChatMessageRow, OutboxRow
from parcours.store.uow import UnitOfWork
from parcours.web.app import create_app
from parcours.web.portal.access import PORTAL_COOKIE, portal_cookie_value
from tests.channels.conftest import write_channels
from tests.runtime.test_tick import library, load, rows
from tests.web.served import Served, free_port
from tests.web.test_backoffice import FAST, PASSWORD, SECRET, add_users

TIMEOUT = 10.0


@pytest.fixture
def served(engine: Engine, db_url: str, tmp_path: Path) -> Iterator[tuple[str, Any]]:
    load(engine, tmp_path)
    with UnitOfWork(engine) as uow:
        acme = uow.creditors.by_name("acme")
        assert acme is not None
    add_users(engine, acme.id, "acme.example", "agent", "viewer")
    port = free_port()
    public = f"http://127.0.0.1:{port}"
    settings = Settings(
        database_url=db_url,
        secret_key=SecretStr(SECRET),
        public_url=public,
        channels_file=write_channels(tmp_path / "channels.yaml"),
    )
    app = create_app(settings, library())
    app.state.backoffice.hasher = FAST
    with Served(app, port):
        yield public, acme.id


async def _signed_in(client: httpx.AsyncClient, email: str) -> str:
    form = (await client.get("/backoffice/login")).text
    csrf = re.search(r'name="csrf" value="([^"]+)"', form)
    assert csrf is not None
    answer = await client.post(
        "/backoffice/login",
        data={"email": email, "password": PASSWORD, "csrf": csrf.group(1)},
    )
    assert answer.status_code == 303, answer.text
    return str(client.cookies["parcours_session"])


async def _next_message(ws: Any) -> dict[str, Any]:
    while True:
        data = json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT))
        if data.get("type") == "message":
            return dict(data)


async def _online(client: httpx.AsyncClient) -> int:
    found = re.search(
        r"Agents online: <strong>(\d+)</strong>", (await client.get("/backoffice/inbox")).text
    )
    assert found is not None
    return int(found.group(1))


def test_a_question_and_its_answer_travel_live_between_debtor_and_agent(
    served: tuple[str, Any], engine: Engine
) -> None:
    public, _ = served
    (case,) = [key for ref, key in rows(engine, CaseRow.ref, CaseRow.id) if ref == "C-D1"]
    now = dt.datetime.now(dt.UTC)
    token = Links(SECRET, public).token("page", str(case), now)
    ws_base = public.replace("http://", "ws://")

    async def scenario() -> None:
        async with httpx.AsyncClient(base_url=public, timeout=TIMEOUT) as agent_http:
            session = await _signed_in(agent_http, "agent@acme.example")
            async with connect(
                f"{ws_base}/p/{token}/chat/ws",
                additional_headers={
                    "Cookie": f"{PORTAL_COOKIE}={portal_cookie_value(SECRET, str(case))}"
                },
            ) as debtor:
                await debtor.send(
                    json.dumps({"type": "message", "body": "Did you get my payment?"})
                )
                asked = await _next_message(debtor)
                assert asked["author"] == "debtor"
                conversation = asked["conversation"]
                assert await _online(agent_http) == 0
                async with connect(
                    f"{ws_base}/backoffice/ws/{conversation}",
                    origin=Origin(public),
                    additional_headers={"Cookie": f"parcours_session={session}"},
                ) as agent:
                    assert await _online(agent_http) == 1
                    await agent.send(json.dumps({"type": "message", "body": "Yes, thank you!"}))
                    heard = await _next_message(debtor)
                    echoed = await _next_message(agent)
                    assert heard["author"] == "agent" and heard["body"] == "Yes, thank you!"
                    assert echoed["id"] == heard["id"]
                    await debtor.send(json.dumps({"type": "message", "body": "Great"}))
                    assert (await _next_message(debtor))["body"] == "Great"
                    assert (await _next_message(agent))["body"] == "Great"
                    # Each message the agent sent over the socket is in the audit log
                    # (written just after the message went out: wait for it).
                    deadline = time.monotonic() + TIMEOUT
                    while "chat.replied" not in {a for (a,) in rows(engine, AuditRow.action)}:
                        assert time.monotonic() < deadline, "the reply was not audited"
                        await asyncio.sleep(0.05)
                    audited = [a for (a,) in rows(engine, AuditRow.action)]
                    assert audited.count("chat.joined") == 1
                    assert audited.count("chat.replied") == 1
                    bad = json.dumps({"type": "message", "body": " "})
                    await agent.send(bad)
                    error = json.loads(await asyncio.wait_for(agent.recv(), TIMEOUT))
                    assert error["type"] == "error"
                # The agent left: no longer counted (the server notices within moments).
                deadline = time.monotonic() + TIMEOUT
                while await _online(agent_http) != 0:
                    assert time.monotonic() < deadline, "the agent stayed online"
                    await asyncio.sleep(0.05)
            # A viewer's socket is refused with 4403 after the handshake.
            async with httpx.AsyncClient(base_url=public, timeout=TIMEOUT) as viewer_http:
                viewer = await _signed_in(viewer_http, "viewer@acme.example")
            async with connect(
                f"{ws_base}/backoffice/ws/{conversation}",
                additional_headers={"Cookie": f"parcours_session={viewer}"},
            ) as refused:
                with pytest.raises(ConnectionClosed) as closed:
                    await asyncio.wait_for(refused.recv(), TIMEOUT)
                assert closed.value.rcvd is not None and closed.value.rcvd.code == 4403

    asyncio.run(scenario())
    bodies = rows(engine, ChatMessageRow.author, ChatMessageRow.body, ChatMessageRow.notified_by)
    assert sorted(bodies) == sorted(
        [
            ("debtor", "Did you get my payment?", None),
            ("agent", "Yes, thank you!", None),  # the debtor was online: no notice
            ("debtor", "Great", None),
        ]
    )
    assert rows(engine, OutboxRow.template) == []
