"""Opaque page tokens bound to the query that issued them.

A token is base64url(JSON {"q": fingerprint of the query, "a": cursor}); a
token presented with any other query (other tenant, scope, filter, order or
memory) fails with INVALID_PAGE_TOKEN instead of silently paging something
else.
"""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

from mnemo_server.errors import invalid


def fingerprint(*parts: object) -> str:
    return hashlib.blake2b(json.dumps(parts, default=str).encode(), digest_size=12).hexdigest()


def encode_token(query: str, cursor: list[Any]) -> str:
    raw = json.dumps({"q": query, "a": cursor}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_token(token: str, query: str, field: str = "page_token") -> list[Any] | None:
    """The cursor of a token issued for `query`; None for an empty token."""
    if not token:
        return None
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        data = json.loads(raw)
        cursor = data["a"]
        if not isinstance(cursor, list):
            raise ValueError("cursor")
    except (ValueError, KeyError, TypeError):
        raise invalid("INVALID_PAGE_TOKEN", field, "is not a page token this server issued") from None
    if data.get("q") != query:
        raise invalid("INVALID_PAGE_TOKEN", field, "was issued for a different query")
    return cursor
