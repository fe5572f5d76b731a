"""A registry app on a fresh SQLite database with a 1 s lease, for run recording's tests (another
lease by indirect parametrization: `@pytest.mark.parametrize("app", [30], indirect=True)`)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from services.common.auth import TokenService, load_or_create_keys
from services.registry.app import RegistryApp
from services.registry.db import Database, migrate
from services.registry.settings import RegistrySettings

LEASE_SECONDS = 1


@pytest_asyncio.fixture(loop_scope="function")
async def app(tmp_path: Path, request: pytest.FixtureRequest) -> AsyncIterator[RegistryApp]:
    url = f"sqlite:///{tmp_path / 'registry.db'}"
    settings = RegistrySettings.from_env(
        {
            "ZQ_SERVICE_TOKEN": "test-service-token",
            "ZQ_DATA_DIR": str(tmp_path),
            "ZQ_DATABASE_URL": url,
            "ZQ_LEASE_SECONDS": str(getattr(request, "param", LEASE_SECONDS)),
        }
    )
    db = Database(url)
    migrate(db.engine)
    keys = load_or_create_keys(settings.jwt_key_path, settings.jwks_path)
    yield RegistryApp.create(settings, db, TokenService(keys, 3600, 3600))
    db.dispose()
