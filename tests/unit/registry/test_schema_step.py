"""Migrations as their own step: `python -m services.registry.migrate` brings a database to this
release's head; a registry that does not migrate at start (ZQ_MIGRATE_ON_START=off) refuses an
empty, older or newer schema instead of running on one it was not written for."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy import text

from services.registry import migrate as migrate_step
from services.registry.db import MIGRATIONS, Database, SchemaMismatch, check_schema, schema_revisions
from services.registry.settings import RegistrySettings


@pytest.fixture
def database(tmp_path: Path) -> Database:
    return Database(f"sqlite:///{tmp_path / 'scheduler.db'}")


def test_the_migration_step_brings_an_empty_database_to_head(
    database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ZQ_DATABASE_URL", database.url)
    assert migrate_step.main() == 0
    assert migrate_step.main() == 0  # idempotent
    current, head = schema_revisions(database.engine)
    assert current == head
    assert check_schema(database.engine) == head


def test_the_migration_step_prefers_the_migration_url(
    database: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ZQ_DATABASE_URL", f"sqlite:///{tmp_path / 'other.db'}")
    monkeypatch.setenv("ZQ_MIGRATION_DATABASE_URL", database.url)
    assert migrate_step.main() == 0
    assert schema_revisions(database.engine)[0] is not None


def test_a_registry_that_does_not_migrate_refuses_an_empty_database(database: Database) -> None:
    with pytest.raises(SchemaMismatch, match="no schema"):
        check_schema(database.engine)


def test_an_older_schema_is_refused_until_it_is_migrated(database: Database) -> None:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with database.engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "0002")
    with pytest.raises(SchemaMismatch, match="older than this release"):
        check_schema(database.engine)


def test_a_schema_newer_than_this_release_is_refused_by_the_registry_and_the_step(
    database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ZQ_DATABASE_URL", database.url)
    assert migrate_step.main() == 0
    with database.engine.begin() as connection:
        connection.execute(text("UPDATE alembic_version SET version_num = '9999_from_the_future'"))
    with pytest.raises(SchemaMismatch, match="newer than this release"):
        check_schema(database.engine)
    assert migrate_step.main() == 2


def test_migrating_at_start_is_on_unless_turned_off() -> None:
    env = {"ZQ_SERVICE_TOKEN": "token", "ZQ_DATABASE_URL": "sqlite:///x.db"}
    assert RegistrySettings.from_env(env).migrate_on_start
    assert not RegistrySettings.from_env({**env, "ZQ_MIGRATE_ON_START": "off"}).migrate_on_start
