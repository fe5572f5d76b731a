"""The scheduler leader's pid, read from the leader row's holder `host:pid:random`."""

from __future__ import annotations

from stack.leader import holder_pid


def test_the_pid_is_the_middle_part_of_the_holder() -> None:
    assert holder_pid("box:4134:9f2c") == 4134


def test_no_holder_or_a_malformed_one_has_no_pid() -> None:
    assert holder_pid("") is None
    assert holder_pid("box:4134") is None
    assert holder_pid("box:abc:9f2c") is None
