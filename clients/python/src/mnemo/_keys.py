"""`Keys`: the clients' API key methods (CreateApiKey, ListApiKeys,
RevokeApiKey); `MnemoClient` inherits them.

`mnemo._akeys` is generated from this module (clients/python/scripts/gen_aio.py).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from mnemo import types as t
from mnemo._calls import Calls
from mnemo._core import conversions as _convert
from mnemo._core import requests as _requests
from mnemo._core.requests import Seconds


class Keys(Calls):
    """API keys: create, list and revoke."""

    def create_api_key(
        self,
        role: t.ApiKeyRole | str,
        *,
        tenant: str | None = None,
        user_ids: Sequence[str] | None = None,
        agent_ids: Sequence[str] | None = None,
        display_name: str | None = None,
        ttl: Seconds | None = None,
        timeout: float | None = None,
    ) -> t.CreatedApiKey:
        """Creates an API key and returns its secret, shown only this once (CreateApiKey).

        Args:
            role: "reader", "writer" or "admin".
            tenant: The key's tenant; the caller's when not given.
            user_ids: Restrict the key to these users.
            agent_ids: Restrict the key to these agents.
            display_name: A name for people.
            ttl: Seconds the key works; until revoked when not given.
        """
        request = _requests.create_api_key(
            role,
            tenant=tenant,
            user_ids=user_ids,
            agent_ids=agent_ids,
            display_name=display_name,
            ttl=ttl,
        )
        return _convert.created_api_key(self._unary(self._admin.CreateApiKey, request, timeout, retry=False))

    def list_api_keys(
        self,
        *,
        page_size: int | None = None,
        page_token: str | None = None,
        show_revoked: bool = False,
        tenant: str | None = None,
        timeout: float | None = None,
    ) -> t.ApiKeyPage:
        """Returns one page of the tenant's API keys, without secrets (ListApiKeys).

        Args:
            tenant: Another tenant whose keys to list (an admin key of the system
                tenant only); the caller's tenant when None.
        """
        request = _requests.list_api_keys(
            page_size=page_size, page_token=page_token, show_revoked=show_revoked, tenant=tenant
        )
        return _convert.api_key_page(self._unary(self._admin.ListApiKeys, request, timeout))

    def iter_api_keys(
        self,
        *,
        page_size: int | None = None,
        show_revoked: bool = False,
        tenant: str | None = None,
        timeout: float | None = None,
    ) -> Iterator[t.ApiKey]:
        """Iterates over all the tenant's API keys, fetching pages as needed."""
        return self._pages(
            lambda token: self.list_api_keys(
                page_size=page_size,
                page_token=token,
                show_revoked=show_revoked,
                tenant=tenant,
                timeout=timeout,
            ),
            lambda page: page.api_keys,
        )

    def revoke_api_key(self, id: str, *, timeout: float | None = None) -> t.ApiKey:
        """Revokes an API key; it stops working at once (RevokeApiKey)."""
        response = self._unary(self._admin.RevokeApiKey, _requests.revoke_api_key(id), timeout, retry=False)
        return _convert.api_key(response.api_key)
