"""Records' fields read back by orjson, and by the standard library where orjson refuses what
``json.dumps`` wrote: the same values either way."""

from __future__ import annotations

import json
import math

from embedswitch import _json


def test_fields_read_back_as_json_dumps_wrote_them() -> None:
    for fields in ({"title": "ä", "n": 3, "tags": ["a", "b"], "meta": {"x": 1.5, "y": None}}, {}):
        text = json.dumps(fields, separators=(",", ":"), sort_keys=True)
        assert _json.loads(text) == fields
        assert _json.loads(text.encode()) == fields


def test_what_orjson_refuses_is_read_by_the_standard_library() -> None:
    huge = {"n": 2**70, "m": -(2**80)}  # past 64 bits
    assert _json.loads(json.dumps(huge)) == huge
    odd = _json.loads(json.dumps({"nan": math.nan, "inf": math.inf}))
    assert math.isnan(odd["nan"]) and odd["inf"] == math.inf
