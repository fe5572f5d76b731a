"""Alembic environment: runs on the connection handed over by services.registry.db.migrate."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine

from services.registry.db import normalize_url
from services.registry.models import Base, in_schema_comparison

config = context.config
connection = config.attributes.get("connection")
if connection is None:
    # `alembic` CLI use: the URL comes from -x url=... or ZQ_DATABASE_URL.
    import os

    url = context.get_x_argument(as_dictionary=True).get("url") or os.environ["ZQ_DATABASE_URL"]
    with create_engine(normalize_url(url)).begin() as connection:
        context.configure(
            connection=connection,
            target_metadata=Base.metadata,
            render_as_batch=True,
            include_object=in_schema_comparison,
        )
        with context.begin_transaction():
            context.run_migrations()
else:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=True,
        include_object=in_schema_comparison,
    )
    with context.begin_transaction():
        context.run_migrations()
