"""`append_logs`: many runs' lines stored together, each log growing in order from its own end,
and a missing run or an oversized piece refused alone (both backends)."""

from __future__ import annotations

from services.common.errors import InvalidArgument, NotFound
from services.registry.db import Database
from services.registry.store import logs
from tests.unit.registry.store.test_executions import running


def test_appends_of_many_runs_land_in_order_at_each_logs_end_and_a_bad_one_fails_alone(db: Database) -> None:
    one, two = running(db, 2)
    with db.session(serialized=True) as session:
        assert logs.append_log(session, one.id, b"before\n") == len(b"before\n")
    too_large = b"x" * (logs.MAX_APPEND_BYTES + 1)
    with db.session(serialized=True) as session:
        ends = logs.append_logs(
            session,
            [
                (one.id, b"a\n"),
                (two.id, b"b\n"),
                (999_999_999, b"gone\n"),
                (two.id, too_large),
                (one.id, b"c\n"),
            ],
        )
    first, second, gone, refused, last = ends
    assert (first, second, last) == (len(b"before\na\n"), len(b"b\n"), len(b"before\na\nc\n"))
    assert isinstance(gone, NotFound) and isinstance(refused, InvalidArgument)
    with db.session() as session:
        assert logs.read_log(session, one.id, 0, 0).data == b"before\na\nc\n"
        assert logs.read_log(session, two.id, 0, 0).data == b"b\n"


def test_a_piece_larger_than_a_chunk_is_stored_in_whole_line_chunks(db: Database) -> None:
    (run,) = running(db)
    line = b"y" * 1000 + b"\n"
    data = line * (logs.CHUNK_BYTES // len(line) + 5)
    with db.session(serialized=True) as session:
        assert logs.append_logs(session, [(run.id, data)]) == [len(data)]
    with db.session() as session:
        page = logs.read_log(session, run.id, 0, 0)
    assert page.data == data and page.size == len(data)
