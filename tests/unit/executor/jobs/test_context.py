"""The job context's progress formula: the guide's integer percentage."""

from __future__ import annotations

from services.executor.jobs.context import progress_percent


def test_progress_percent_is_the_guides_integer_formula() -> None:
    assert [progress_percent(i, 30) for i in (1, 2, 3, 15, 30)] == [3, 6, 10, 50, 100]
