"""Reading back the JSON the stores keep (records' fields, on every search hit): orjson, several
times faster than the standard library, and the standard library for what ``json.dumps`` writes
but orjson refuses (NaN, infinities, integers past 64 bits)."""

from __future__ import annotations

import json
from typing import Any

import orjson


def loads(text: str | bytes) -> Any:
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return json.loads(text)
