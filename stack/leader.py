"""Which scheduler leads, for the cluster banner: read from the leader row in the database."""

from __future__ import annotations

from sqlalchemy import create_engine, text
from sqlalchemy.exc import SQLAlchemyError

from services.registry.db import normalize_url


class LeaderWatch:
    """Polls the live holder (`host:pid:random`) of ``zq_task_scheduler_leader``."""

    def __init__(self, database_url: str) -> None:
        self._engine = create_engine(normalize_url(database_url), pool_size=1, pool_pre_ping=True)
        self._announced: int | None = None

    def holder_pid(self) -> int | None:
        try:
            with self._engine.connect() as conn:
                holder = conn.execute(
                    text(
                        "SELECT holder FROM zq_task_scheduler_leader "
                        "WHERE id = 1 AND expires_at > CURRENT_TIMESTAMP"
                    )
                ).scalar()
        except SQLAlchemyError:
            return None
        return holder_pid(str(holder or ""))

    def changed(self) -> int | None:
        """The leader's pid when it differs from the one last returned here, else None."""
        pid = self.holder_pid()
        if pid is None or pid == self._announced:
            return None
        self._announced = pid
        return pid

    def close(self) -> None:
        self._engine.dispose()


def holder_pid(holder: str) -> int | None:
    """The pid in a leader holder `host:pid:random`; None for anything else."""
    parts = holder.split(":")
    return int(parts[1]) if len(parts) >= 3 and parts[1].isdigit() else None
