"""JSON encoding for the mirror: fast (orjson) and exact (stdlib fallback for what orjson refuses)."""

from __future__ import annotations

import json
from typing import Any

import orjson


def canonical_json(value: Any) -> bytes:
    """Keys sorted, so the same content always hashes the same."""
    try:
        return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)
    except TypeError:  # e.g. integers beyond 64 bits, which orjson will not encode
        return json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode()


def dumps(value: Any) -> str:
    """The serializer of the database's JSON columns."""
    try:
        return orjson.dumps(value).decode()
    except TypeError:
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
