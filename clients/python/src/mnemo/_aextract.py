# Generated from mnemo/_extract.py by clients/python/scripts/gen_aio.py; do not edit.
"""`AsyncExtraction`: `AsyncMnemoClient`'s ExtractionService methods (see `mnemo._extract`)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

from mnemo._acalls import AsyncCalls
from mnemo._core import extraction as x


class AsyncExtraction(AsyncCalls):
    """Conversations in: extraction jobs and their operations."""

    async def extract(
        self,
        messages: Sequence[x.MessageLike],
        *,
        user_id: str | None = None,
        agent_id: str | None = None,
        run_id: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        mode: x.ExtractionMode | str | None = None,
        request_id: str | None = None,
        wait: bool = False,
        timeout: float | None = None,
    ) -> x.Operation:
        """Hands the server a conversation to turn into memories with its LLM
        (ExtractMemories) and returns the job's Operation: at once, or with `wait`
        once it has finished (or the deadline is near).

        Args:
            messages: `ConversationMessage`s or mappings with "role" ("user",
                "assistant", "system"), "content", and optionally "name" and "time".
            mode: "additive" (mem0 2.x, the default) or "reconcile" (ADD/UPDATE/DELETE/NONE
                against the scope's nearest memories).
            request_id: An idempotency key: a retry returns the first call's Operation.
        """
        request = x.extract_memories(
            messages,
            user_id=user_id,
            agent_id=agent_id,
            run_id=run_id,
            metadata=metadata,
            mode=mode,
            request_id=self._request_id(request_id),
            wait=wait,
        )
        # Retried only under a request id: then a retry returns the first call's Operation.
        retry = bool(request.request_id)
        response = await self._unary(self._extraction.ExtractMemories, request, timeout, retry=retry)
        return x.operation(response.operation)

    async def get_operation(self, id: str, *, timeout: float | None = None) -> x.Operation:
        """Returns one extraction Operation (GetOperation)."""
        response = await self._unary(self._extraction.GetOperation, x.get_operation(id), timeout)
        return x.operation(response.operation)

    async def list_operations(
        self,
        *,
        user_id: str | None = None,
        agent_id: str | None = None,
        run_id: str | None = None,
        state: x.OperationState | str | None = None,
        page_size: int | None = None,
        page_token: str | None = None,
        timeout: float | None = None,
    ) -> x.OperationPage:
        """Returns one page of the caller's extraction Operations, newest first (ListOperations)."""
        request = x.list_operations(
            user_id=user_id,
            agent_id=agent_id,
            run_id=run_id,
            state=state,
            page_size=page_size,
            page_token=page_token,
        )
        return x.operation_page(await self._unary(self._extraction.ListOperations, request, timeout))

    def iter_operations(
        self,
        *,
        user_id: str | None = None,
        agent_id: str | None = None,
        run_id: str | None = None,
        state: x.OperationState | str | None = None,
        page_size: int | None = None,
        timeout: float | None = None,
    ) -> AsyncIterator[x.Operation]:
        """Iterates over all the caller's extraction Operations, fetching pages as needed."""
        return self._pages(
            lambda token: self.list_operations(
                user_id=user_id,
                agent_id=agent_id,
                run_id=run_id,
                state=state,
                page_size=page_size,
                page_token=token,
                timeout=timeout,
            ),
            lambda page: page.operations,
        )
