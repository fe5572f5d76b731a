"""Struct conversion keeps JSON integers integers."""

from __future__ import annotations

from services.common.structs import dict_to_struct, struct_to_dict


def test_struct_round_trip_keeps_integers_integers() -> None:
    data = {"steps": 5, "rate": 0.5, "nested": [1, {"n": 2}], "flag": True, "none": None, "text": "文本"}
    back = struct_to_dict(dict_to_struct(data))
    assert back == data
    assert isinstance(back["steps"], int) and isinstance(back["nested"][1]["n"], int)
