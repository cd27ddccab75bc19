"""The only code the asyncio facade needs that the blocking one has no twin of:
iterating a caller's stream that may be synchronous or asynchronous.

The generator (clients/python/scripts/gen_aio.py) turns `for x in items` over a
parameter annotated `Iterable[...]` into `async for x in aiter_any(items)`, and
`enumerate(items)` into `aenumerate(items)`.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Iterable
from typing import TypeVar

T = TypeVar("T")


async def aiter_any(items: Iterable[T] | AsyncIterable[T]) -> AsyncIterator[T]:
    """Yields the items of a synchronous or an asynchronous iterable."""
    if isinstance(items, AsyncIterable):
        async for item in items:
            yield item
    else:
        for item in items:
            yield item


async def aenumerate(items: Iterable[T] | AsyncIterable[T], start: int = 0) -> AsyncIterator[tuple[int, T]]:
    """`enumerate` over a synchronous or an asynchronous iterable."""
    position = start
    async for item in aiter_any(items):
        yield position, item
        position += 1
