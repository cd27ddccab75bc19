"""GetStats: counts per tenant and scope, the index's shards, the caches,
revisions, the model and the retention policies in force."""

from __future__ import annotations

from mnemo_server.errors import invalid
from mnemo_server.models import Principal, Scope
from mnemo_server.service.state import ServiceState
from mnemo_server.service.types import ShardStats, Stats, TenantStats


class Statistics(ServiceState):
    """What GetStats reports; a tenant's admin sees its own tenant and shards."""

    def stats(self, principal: Principal, *, scope: Scope, scope_limit: int, all_tenants: bool) -> Stats:
        if not 0 <= scope_limit <= 1000:
            raise invalid("INVALID_ARGUMENT", "scope_limit", "must lie in [0, 1000]")
        tenants = []
        for row in self.store.tenant_counts():
            if not all_tenants and row.tenant != principal.tenant:
                continue
            scopes = self.store.scope_counts(row.tenant, scope=scope, limit=scope_limit or 100)
            tenants.append(TenantStats(row.tenant, row.memory_count, row.content_bytes, scopes))
        shards = [
            ShardStats(
                s.shard_id,
                s.kind,
                s.vector_count,
                s.dimension,
                s.memory_bytes,
                s.snapshot_revision,
                s.kind_reason,
            )
            # A tenant's admin sees its own shards only (shard ids name tenants).
            for s in self.index.shards(None if all_tenants else principal.tenant)
        ]
        retention = tuple(
            rule
            for rule in self.settings.lifecycle.retention
            if all_tenants or rule.tenant in ("*", principal.tenant)
        )
        return Stats(
            tenants=tenants,
            shards=shards,
            caches=self.caches.stats() if self.caches is not None else [],
            revision=self.store.current_revision(),
            oldest_revision=self.store.compacted_revision(),
            embedding_model=self.embedder.model_id,
            dimension=self.embedder.dimension,
            retention=retention,
        )
