"""Database URLs as the services take them: `postgresql://...` means psycopg 3, the driver we ship."""

from __future__ import annotations


def normalize_url(url: str) -> str:
    """The SQLAlchemy URL of a configured one: postgresql:// and postgres:// use psycopg 3."""
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url
