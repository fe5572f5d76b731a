"""services.registry.convert: the registry's wire format."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from google.protobuf import timestamp_pb2

from services.registry.convert import from_timestamp, to_timestamp


@pytest.mark.parametrize(
    "moment",
    [
        datetime(2026, 12, 4, 18, 0, tzinfo=UTC),
        datetime(2026, 12, 4, 18, 0, 0, 999_999, tzinfo=UTC),
        datetime(1970, 1, 1, tzinfo=UTC),
        datetime(1969, 12, 31, 23, 59, 59, 500_000, tzinfo=UTC),  # before the epoch: nanos stay >= 0
        datetime(2026, 3, 8, 2, 30, 0, 123_456, tzinfo=timezone(timedelta(hours=8))),  # any zone
        datetime(9999, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC),
    ],
)
def test_a_moment_becomes_the_timestamp_protobuf_makes_of_it_and_comes_back_the_same(
    moment: datetime,
) -> None:
    expected = timestamp_pb2.Timestamp()
    expected.FromDatetime(moment.astimezone(UTC))
    converted = to_timestamp(moment)
    assert converted == expected
    assert from_timestamp(converted) == moment


def test_no_moment_is_no_timestamp() -> None:
    assert to_timestamp(None) is None
