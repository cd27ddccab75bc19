"""mnemo.v1.AdminService: stats, consistency, snapshots, re-embedding and
API keys. Every handler runs inside the call wrapper of api/envelope.py.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from mnemo.v1 import admin_service_pb2 as admin_pb
from mnemo.v1 import admin_service_pb2_grpc as admin_grpc
from mnemo_server.api import convert
from mnemo_server.api.envelope import Servicer, caller_of, rpc
from mnemo_server.auth import ANONYMOUS, ROLES, ApiKeys
from mnemo_server.errors import UnimplementedError, invalid
from mnemo_server.models import Principal

#: Memories re-embedded per worker-thread call (and per progress message).
REEMBED_BATCH = 64


class AdminServicer(Servicer, admin_grpc.AdminServiceServicer):
    """mnemo.v1.AdminService."""

    #: Set by the App once the key store is open.
    api_keys: ApiKeys | None = None

    @rpc
    async def GetStats(self, request: admin_pb.GetStatsRequest, principal: Principal, context: Any) -> Any:
        caller = caller_of(context)
        stats = await self.run(
            self.service.stats,
            principal,
            scope=convert.scope_from_proto(request.scope),
            scope_limit=request.scope_limit,
            # An admin of the system tenant sees every tenant (with auth on).
            all_tenants=caller.system and caller is not ANONYMOUS,
        )
        return convert.stats_to_proto(stats)

    @rpc
    async def CheckConsistency(
        self, request: admin_pb.CheckConsistencyRequest, principal: Principal, context: Any
    ) -> Any:
        report = await self.run(self.service.check_consistency, repair=request.repair)
        kinds = {
            "missing": admin_pb.INCONSISTENCY_KIND_MISSING_FROM_INDEX,
            "orphan": admin_pb.INCONSISTENCY_KIND_ORPHAN_IN_INDEX,
            "stale": admin_pb.INCONSISTENCY_KIND_STALE_IN_INDEX,
        }
        response = admin_pb.CheckConsistencyResponse(
            consistent=not report.inconsistencies,
            store_count=report.store_count,
            index_count=report.index_count,
            repaired_count=report.repaired,
        )
        for item in report.inconsistencies[:1000]:
            response.inconsistencies.add(kind=kinds[item.kind], memory_id=item.memory_id, tenant=item.tenant)
        return response

    @rpc
    async def CreateSnapshot(
        self, request: admin_pb.CreateSnapshotRequest, principal: Principal, context: Any
    ) -> Any:
        info = await self.run(self.service.snapshot)
        response = admin_pb.CreateSnapshotResponse(
            revision=info.revision, bytes=info.bytes, shard_count=info.shard_count
        )
        convert.us_to_timestamp(info.time_us, response.snapshot_time)
        return response

    @rpc
    async def ReembedMemories(
        self, request: admin_pb.ReembedMemoriesRequest, principal: Principal, context: Any
    ) -> AsyncIterator[admin_pb.ReembedMemoriesResponse]:
        ids = await self.run(
            self.service.reembed_candidates,
            principal,
            scope=convert.scope_from_proto(request.scope),
            filter_text=request.filter,
            force=request.force,
        )
        model = self.service.embedder.model_id
        done = 0
        yield admin_pb.ReembedMemoriesResponse(total_count=len(ids), embedding_model=model)
        if not request.dry_run:
            for start in range(0, len(ids), REEMBED_BATCH):
                done += await self.run(self.service.reembed, principal, ids[start : start + REEMBED_BATCH])
                yield admin_pb.ReembedMemoriesResponse(
                    total_count=len(ids), reembedded_count=done, embedding_model=model
                )
        yield admin_pb.ReembedMemoriesResponse(
            total_count=len(ids), reembedded_count=done, done=True, embedding_model=model
        )

    def _keys(self) -> ApiKeys:
        if self.api_keys is None:
            raise UnimplementedError("this server has no key store")
        return self.api_keys

    @rpc
    async def CreateApiKey(
        self, request: admin_pb.CreateApiKeyRequest, principal: Principal, context: Any
    ) -> Any:
        role = request.role
        if role not in admin_pb.ApiKeyRole.values():
            raise invalid("INVALID_ENUM_VALUE", "role", f"unknown role {role}")
        record, secret = await self.run(
            self._keys().create_key,
            caller_of(context),
            tenant=request.tenant,
            role=ROLES[role - 1] if role else "",
            user_ids=tuple(request.user_ids),
            agent_ids=tuple(request.agent_ids),
            display_name=request.display_name,
            ttl_us=convert.duration_to_us(request.ttl, "ttl") if request.HasField("ttl") else None,
        )
        response = admin_pb.CreateApiKeyResponse(secret=secret)
        convert.api_key_to_proto(record, response.api_key)
        return response

    @rpc
    async def ListApiKeys(
        self, request: admin_pb.ListApiKeysRequest, principal: Principal, context: Any
    ) -> Any:
        records, token = await self.run(
            self._keys().list_keys,
            caller_of(context),
            page_size=request.page_size,
            page_token=request.page_token,
            show_revoked=request.show_revoked,
            tenant=request.tenant,
        )
        response = admin_pb.ListApiKeysResponse(next_page_token=token)
        for record in records:
            convert.api_key_to_proto(record, response.api_keys.add())
        return response

    @rpc
    async def RevokeApiKey(
        self, request: admin_pb.RevokeApiKeyRequest, principal: Principal, context: Any
    ) -> Any:
        record = await self.run(self._keys().revoke_key, caller_of(context), request.id)
        response = admin_pb.RevokeApiKeyResponse()
        convert.api_key_to_proto(record, response.api_key)
        return response
