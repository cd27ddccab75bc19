"""Opaque page tokens bound to the query that issued them.

A token is base64url(JSON {"q": fingerprint of the query, "a": cursor}); a
token presented with any other query (other tenant, scope, filter, order or
memory) fails with INVALID_PAGE_TOKEN instead of silently paging something
else. Tokens are not signed, so a forged one can carry the right fingerprint:
its cursor is checked against the shape the query's cursors have (so many
values, each an int64 or a short string) before any store sees it.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Sequence
from typing import Any

from mnemo_server.errors import invalid


def fingerprint(*parts: object) -> str:
    return hashlib.blake2b(json.dumps(parts, default=str).encode(), digest_size=12).hexdigest()


def encode_token(query: str, cursor: list[Any]) -> str:
    raw = json.dumps({"q": query, "a": cursor}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


#: Tokens this server issues are far shorter; longer ones are not decoded.
MAX_TOKEN_CHARS = 4096
MAX_CURSOR_STRING = 1024
_INT64 = (-(2**63), 2**63 - 1)


def decode_token(
    token: str, query: str, shape: Sequence[type], field: str = "page_token"
) -> list[Any] | None:
    """The cursor of a token issued for `query`; None for an empty token.

    `shape` is the type of each value of the query's cursors (int or str).
    """
    if not token:
        return None
    forged = invalid("INVALID_PAGE_TOKEN", field, "is not a page token this server issued")
    if len(token) > MAX_TOKEN_CHARS:
        raise forged
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        data = json.loads(raw)
    except (ValueError, RecursionError):
        raise forged from None
    if not isinstance(data, dict) or not isinstance(data.get("a"), list):
        raise forged
    if data.get("q") != query:
        raise invalid("INVALID_PAGE_TOKEN", field, "was issued for a different query")
    cursor: list[Any] = data["a"]
    if len(cursor) != len(shape) or not all(_fits(v, kind) for v, kind in zip(cursor, shape, strict=True)):
        raise forged
    return cursor


def _fits(value: Any, kind: type) -> bool:
    if kind is int:
        return type(value) is int and _INT64[0] <= value <= _INT64[1]
    return type(value) is str and len(value) <= MAX_CURSOR_STRING and _is_utf8(value)


def _is_utf8(value: str) -> bool:
    # JSON can spell a lone surrogate ("\ud800"), which no store can hold.
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
