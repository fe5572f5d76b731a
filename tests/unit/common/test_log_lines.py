"""The log line format shared by the executor and the scheduler."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from services.common.log_lines import MAX_LINE_BYTES, LogStream, log_lines, split_at_lines, stamp

NOW = datetime(2026, 12, 3, 14, 44, 1, 5000, tzinfo=UTC)


def test_every_line_of_a_message_is_stamped_in_utc_with_its_stream() -> None:
    local = NOW.astimezone(timezone(timedelta(hours=8)))
    assert log_lines(LogStream.SYSTEM, "Traceback:\n  boom\n", local) == (
        b"2026-12-03T14:44:01.005Z system Traceback:\n2026-12-03T14:44:01.005Z system   boom\n"
    )


def test_a_stamp_has_a_fixed_width_and_cuts_to_the_millisecond() -> None:
    assert stamp(NOW.replace(microsecond=0)) == b"2026-12-03T14:44:01.000Z"
    assert stamp(NOW.replace(microsecond=999_999)) == b"2026-12-03T14:44:01.999Z"  # not rounded up


def test_an_overlong_line_becomes_several() -> None:
    text = log_lines(LogStream.STDOUT, b"z" * (MAX_LINE_BYTES + 1), NOW)
    assert text.count(b"\n") == 2


def test_pieces_are_cut_after_a_newline_and_join_to_the_whole() -> None:
    data = b"".join(b"%05d\n" % i for i in range(1000))
    pieces = split_at_lines(data, 64)
    assert b"".join(pieces) == data
    assert all(len(piece) <= 64 and piece.endswith(b"\n") for piece in pieces)


def test_a_line_longer_than_a_piece_is_cut_where_it_must() -> None:
    assert split_at_lines(b"abcdefgh", 3) == [b"abc", b"def", b"gh"]
