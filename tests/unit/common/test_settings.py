"""Settings read from the environment: a switch takes the usual spellings, anything else is an error
that names the variable."""

from __future__ import annotations

import pytest

from services.common.settings import env_bool


@pytest.mark.parametrize("raw", ["1", "true", "YES", " on "])
def test_a_switch_is_on_in_any_usual_spelling(raw: str) -> None:
    assert env_bool({"ZQ_SWITCH": raw}, "ZQ_SWITCH", False) is True


@pytest.mark.parametrize("raw", ["0", "false", "No", "off"])
def test_a_switch_is_off_in_any_usual_spelling(raw: str) -> None:
    assert env_bool({"ZQ_SWITCH": raw}, "ZQ_SWITCH", True) is False


def test_an_unset_or_empty_switch_takes_its_default() -> None:
    assert env_bool({}, "ZQ_SWITCH", True) is True
    assert env_bool({"ZQ_SWITCH": "  "}, "ZQ_SWITCH", False) is False


def test_a_switch_that_is_neither_on_nor_off_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match="ZQ_SWITCH must be on or off .*'maybe'"):
        env_bool({"ZQ_SWITCH": "maybe"}, "ZQ_SWITCH", True)
