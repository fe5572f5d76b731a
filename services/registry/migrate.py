"""The schema migration as its own step: `python -m services.registry.migrate`.

Brings the database of ZQ_MIGRATION_DATABASE_URL (a user allowed DDL; default ZQ_DATABASE_URL) to
this release's newest Alembic revision and exits: 0 when the schema is at head, 2 when it cannot
be (unreachable database, a schema newer than this release). Idempotent, and safe to run from
several pods at once (PostgreSQL: under an advisory lock, see `db.migrate`). In Kubernetes it runs
as the registry pods' initContainer; the registry itself then runs with ZQ_MIGRATE_ON_START=off and
refuses a schema it does not know (`db.check_schema`), so its database user needs no DDL rights.

Migrations follow expand-then-contract (docs/migrations.md): a release only adds (nullable or
defaulted columns, new tables, indexes), so the previous release's code keeps working on the new
schema while a rolling update runs both; what the old code still reads is removed one release later.
"""

from __future__ import annotations

import logging
import os
import sys

from services.common.logging import configure_logging
from services.common.settings import data_dir, env_str
from services.registry.db import Database, check_schema, migrate

log = logging.getLogger("services.registry.migrate")


def main() -> int:
    configure_logging("migrate")
    default_url = env_str(os.environ, "ZQ_DATABASE_URL", f"sqlite:///{data_dir(os.environ) / 'scheduler.db'}")
    database = Database(env_str(os.environ, "ZQ_MIGRATION_DATABASE_URL", default_url))
    try:
        migrate(database.engine)
        revision = check_schema(database.engine)
    except Exception as exc:
        log.error("migration failed: %s", exc)
        return 2
    finally:
        database.dispose()
    log.info("schema at head", extra={"revision": revision})
    return 0


if __name__ == "__main__":
    sys.exit(main())
