"""services.registry.db on PostgreSQL: a pooled connection is checked with a round trip only after
it sat idle; one that died while idle is replaced without failing the transaction that gets it."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import Engine, create_engine, text

from services.registry import db as db_module
from services.registry.db import Database, normalize_url
from tests.conftest import PG_URL, postgres_schema_url

IDLE = 0.05


@pytest.fixture
def engine(monkeypatch: pytest.MonkeyPatch) -> Iterator[Engine]:
    monkeypatch.setattr(db_module, "PING_AFTER_IDLE_SECONDS", IDLE)
    with postgres_schema_url("zq_idle") as url:
        database = Database(url)
        yield database.engine
        database.dispose()


@pytest.fixture
def pings(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    seen: list[int] = []
    ping = engine.dialect.do_ping

    def counted(dbapi_conn: Any) -> bool:
        seen.append(1)
        return ping(dbapi_conn)

    monkeypatch.setattr(engine.dialect, "do_ping", counted)
    return seen


def backend_pid(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(text("SELECT pg_backend_pid()")).scalar_one())


def test_a_connection_used_a_moment_ago_is_handed_out_without_a_ping(
    engine: Engine, pings: list[int]
) -> None:
    first = backend_pid(engine)  # a new connection: not pinged either
    assert backend_pid(engine) == first  # the one used last comes back
    assert pings == []


def test_a_connection_idle_for_longer_is_pinged_once_before_it_is_handed_out(
    engine: Engine, pings: list[int]
) -> None:
    first = backend_pid(engine)
    time.sleep(IDLE * 2)
    assert backend_pid(engine) == first
    assert pings == [1]


def test_a_connection_that_died_while_idle_is_replaced_and_the_transaction_goes_on(
    engine: Engine, pings: list[int]
) -> None:
    dead = backend_pid(engine)
    killer = create_engine(normalize_url(PG_URL))
    with killer.begin() as conn:
        assert conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": dead}).scalar_one()
    killer.dispose()
    time.sleep(IDLE * 2)
    assert backend_pid(engine) != dead
    assert pings == [1]
