// The generated code carries the whole mnemo.v1 contract: both services with
// every RPC and its streaming kind, as the server and the Python SDK see it.
import { test } from "node:test";
import assert from "node:assert/strict";
import { MemoryService } from "./gen/mnemo/v1/memory_service_pb.js";
import { AdminService } from "./gen/mnemo/v1/admin_service_pb.js";
import { ErrorReason } from "./gen/mnemo/v1/errors_pb.js";

const kinds = (service: typeof MemoryService | typeof AdminService) =>
  Object.fromEntries(service.methods.map((m) => [m.name, m.methodKind]));

test("MemoryService has every RPC with its streaming kind", () => {
  assert.equal(MemoryService.typeName, "mnemo.v1.MemoryService");
  assert.deepEqual(kinds(MemoryService), {
    CreateMemory: "unary",
    GetMemory: "unary",
    UpdateMemory: "unary",
    DeleteMemory: "unary",
    ListMemories: "unary",
    SearchMemories: "unary",
    BatchSearchMemories: "unary",
    StreamSearchMemories: "bidi_streaming",
    BatchWriteMemories: "unary",
    ImportMemories: "client_streaming",
    ExportMemories: "server_streaming",
    DeleteMemories: "unary",
    GetMemoryHistory: "unary",
    WatchMemories: "server_streaming",
  });
});

test("AdminService has every RPC with its streaming kind", () => {
  assert.equal(AdminService.typeName, "mnemo.v1.AdminService");
  assert.deepEqual(kinds(AdminService), {
    GetStats: "unary",
    CheckConsistency: "unary",
    CreateSnapshot: "unary",
    ReembedMemories: "server_streaming",
    CreateApiKey: "unary",
    ListApiKeys: "unary",
    RevokeApiKey: "unary",
  });
});

test("error reasons are generated", () => {
  assert.equal(ErrorReason[ErrorReason.MEMORY_NOT_FOUND], "MEMORY_NOT_FOUND");
  assert.equal(ErrorReason[ErrorReason.ETAG_MISMATCH], "ETAG_MISMATCH");
});
