"""Checks on what clients send, with stable reasons and field paths.

Field paths are relative to the request ("memory.content"); batch callers put
them under the item's place ("operations[3].create.memory.content").
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from mnemo_server.config import LimitSettings
from mnemo_server.errors import invalid

ID_PATTERN = re.compile(r"[A-Za-z0-9._:-]{1,128}")
MAX_SCOPE_CHARS = 256
MAX_TAG_CHARS = 64
MAX_RELATION_CHARS = 64
MAX_METADATA_DEPTH = 16
MAX_REQUEST_ID_CHARS = 128

#: The RFC 3339 range, in microseconds since the epoch: 0001-01-01T00:00:00Z
#: to 9999-12-31T23:59:59.999999Z. Every time Mnemo stores lies in it, so
#: every SDK can show every time it is sent.
MIN_TIME_US = -62_135_596_800 * 1_000_000
MAX_TIME_US = 253_402_300_799 * 1_000_000 + 999_999
#: The range of google.protobuf.Duration: about 10,000 years either way.
MAX_DURATION_S = 315_576_000_000
TIME_RANGE = "0001-01-01T00:00:00Z to 9999-12-31T23:59:59.999999Z"


def join(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


def check_id(memory_id: str, field: str) -> None:
    if not ID_PATTERN.fullmatch(memory_id):
        raise invalid("INVALID_ID", field, "must be 1 to 128 characters of letters, digits and . _ : -")


def check_request_id(request_id: str, field: str) -> None:
    if len(request_id) > MAX_REQUEST_ID_CHARS:
        raise invalid("INVALID_ARGUMENT", field, f"must be at most {MAX_REQUEST_ID_CHARS} characters")


def check_time_us(us: int, field: str) -> int:
    """`us` if it lies in the RFC 3339 range (INVALID_TIME otherwise)."""
    if not MIN_TIME_US <= us <= MAX_TIME_US:
        raise invalid("INVALID_TIME", field, f"must lie in {TIME_RANGE}")
    return us


def check_expiry_us(now_us: int, ttl_us: int, field: str) -> int:
    """The expiry a ttl gives from now, if it lies in the RFC 3339 range."""
    if now_us + ttl_us > MAX_TIME_US:
        raise invalid("INVALID_TIME", field, "puts the expiry after 9999-12-31T23:59:59.999999Z")
    return now_us + ttl_us


def check_scope_value(value: str, field: str) -> None:
    if len(value) > MAX_SCOPE_CHARS:
        raise invalid("INVALID_ARGUMENT", field, f"must be at most {MAX_SCOPE_CHARS} characters")
    if any(ord(c) < 32 for c in value):
        raise invalid("INVALID_ARGUMENT", field, "must not contain control characters")


def check_content(content: str, field: str, limits: LimitSettings) -> None:
    if not content.strip():
        raise invalid("CONTENT_EMPTY", field, "must not be empty")
    size = len(content.encode("utf-8"))
    if size > limits.max_content_bytes:
        raise invalid("CONTENT_TOO_LARGE", field, f"is {size} bytes; the limit is {limits.max_content_bytes}")


def check_tags(tags: tuple[str, ...], field: str, limits: LimitSettings) -> tuple[str, ...]:
    """Tags deduplicated in order."""
    unique = tuple(dict.fromkeys(tags))
    if len(unique) > limits.max_tags:
        raise invalid("METADATA_TOO_LARGE", field, f"has {len(unique)} tags; the limit is {limits.max_tags}")
    for i, tag in enumerate(unique):
        if not 1 <= len(tag) <= MAX_TAG_CHARS or any(ord(c) < 32 for c in tag):
            raise invalid(
                "INVALID_ARGUMENT", f"{field}[{i}]", f"tags are 1 to {MAX_TAG_CHARS} printable characters"
            )
    return unique


def _depth(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max((_depth(v) for v in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((_depth(v) for v in value), default=0)
    return 0


def check_metadata(metadata: dict[str, Any], field: str, limits: LimitSettings) -> None:
    for key in metadata:
        if not key or len(key) > 256:
            raise invalid("INVALID_ARGUMENT", field, "metadata keys are 1 to 256 characters")
    if _depth(metadata) > MAX_METADATA_DEPTH:
        raise invalid("METADATA_TOO_LARGE", field, f"nests deeper than {MAX_METADATA_DEPTH} levels")
    size = len(json.dumps(metadata, ensure_ascii=False).encode("utf-8"))
    if size > limits.max_metadata_bytes:
        raise invalid(
            "METADATA_TOO_LARGE", field, f"is {size} bytes as JSON; the limit is {limits.max_metadata_bytes}"
        )


def check_links(links: tuple[Any, ...], field: str, limits: LimitSettings) -> None:
    if len(links) > limits.max_links:
        raise invalid("METADATA_TOO_LARGE", field, f"has {len(links)} links; the limit is {limits.max_links}")
    for i, link in enumerate(links):
        check_id(link.target_id, f"{field}[{i}].target_id")
        if not 1 <= len(link.relation) <= MAX_RELATION_CHARS:
            raise invalid(
                "INVALID_ARGUMENT", f"{field}[{i}].relation", f"must be 1 to {MAX_RELATION_CHARS} characters"
            )
        if not math.isfinite(link.weight):
            raise invalid("INVALID_ARGUMENT", f"{field}[{i}].weight", "must be finite")


def check_page_size(page_size: int, field: str, limits: LimitSettings, default: int = 100) -> int:
    if page_size < 0 or page_size > limits.max_page_size:
        raise invalid("INVALID_PAGE_SIZE", field, f"must lie in [0, {limits.max_page_size}]")
    return page_size or default
