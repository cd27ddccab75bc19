// Extraction (mnemo.v1.ExtractionService): the typed objects, and the one
// place its requests are built and its responses decoded. The twin of the
// Python SDK's mnemo/extraction.py.

import { create } from "@bufbuild/protobuf";
import { enumFromProto, enumToProto, memory, timeFromProto, timeToProto } from "./convert.js";
import * as pb from "./gen/mnemo/v1/extraction_service_pb.js";
import type { CallOptions, ScopeOptions } from "./options.js";
import { scope } from "./requests.js";
import type { EnumLike, Memory, MetadataInput } from "./types.js";
import { toStruct } from "./values.js";

/** How facts become changes (mnemo.v1.ExtractionMode). */
export const ExtractionMode = {
  UNSPECIFIED: "UNSPECIFIED",
  ADDITIVE: "ADDITIVE",
  RECONCILE: "RECONCILE",
} as const;
export type ExtractionMode = (typeof ExtractionMode)[keyof typeof ExtractionMode];

/** Where an operation stands (mnemo.v1.OperationState). */
export const OperationState = {
  UNSPECIFIED: "UNSPECIFIED",
  PENDING: "PENDING",
  RUNNING: "RUNNING",
  SUCCEEDED: "SUCCEEDED",
  FAILED: "FAILED",
} as const;
export type OperationState = (typeof OperationState)[keyof typeof OperationState];

/** What one fact did (mnemo.v1.FactEvent). */
export const FactEvent = {
  UNSPECIFIED: "UNSPECIFIED",
  ADDED: "ADDED",
  UPDATED: "UPDATED",
  DELETED: "DELETED",
  UNCHANGED: "UNCHANGED",
} as const;
export type FactEvent = (typeof FactEvent)[keyof typeof FactEvent];

const ENUMS = {
  ExtractionMode: { name: "ExtractionMode", members: ExtractionMode, proto: pb.ExtractionMode, prefix: "EXTRACTION_MODE_" },
  OperationState: { name: "OperationState", members: OperationState, proto: pb.OperationState, prefix: "OPERATION_STATE_" },
  FactEvent: { name: "FactEvent", members: FactEvent, proto: pb.FactEvent, prefix: "FACT_EVENT_" },
} as const;

/** One message of a conversation: role "user", "assistant" or "system". */
export interface ConversationMessage {
  readonly role: string;
  readonly content: string;
  readonly name?: string | null;
  readonly time?: Date | string | null;
}

/** Options of `extract`. */
export interface ExtractOptions extends ScopeOptions, CallOptions {
  /** Metadata of every memory the job creates. */
  metadata?: Readonly<Record<string, MetadataInput>> | null;
  /** "additive" (mem0 2.x, the default) or "reconcile" (ADD/UPDATE/DELETE/NONE). */
  mode?: EnumLike<ExtractionMode> | null;
  /** An idempotency key: a retry returns the first call's operation. */
  requestId?: string | null;
  /** Answer once the job has finished (or the deadline is near). */
  wait?: boolean | null;
}

/** Options of `listOperations`. */
export interface ListOperationsOptions extends ScopeOptions, CallOptions {
  state?: EnumLike<OperationState> | null;
  pageSize?: number | null;
  pageToken?: string | null;
}

/** Options of `iterOperations`. */
export type IterOperationsOptions = Omit<ListOperationsOptions, "pageToken">;

export interface FactOutcome {
  readonly event: FactEvent;
  readonly text: string;
  readonly memory: Memory | null;
  readonly before: Memory | null;
  readonly after: Memory | null;
  readonly revision: bigint;
  readonly raw: pb.FactOutcome;
}

/** A durable extraction job; `errorReason` is set when FAILED, `facts` when SUCCEEDED. */
export interface Operation {
  readonly id: string;
  readonly state: OperationState;
  readonly userId: string;
  readonly agentId: string;
  readonly runId: string;
  readonly mode: ExtractionMode;
  readonly requestId: string;
  readonly createTime: Date | null;
  readonly updateTime: Date | null;
  readonly attempts: number;
  readonly errorReason: string;
  readonly errorMessage: string;
  readonly facts: readonly FactOutcome[];
  readonly revision: bigint;
  readonly done: boolean;
  readonly raw: pb.Operation;
}

export interface OperationPage {
  readonly operations: readonly Operation[];
  readonly nextPageToken: string;
  readonly raw: pb.ListOperationsResponse;
}

type Fields<T> = Omit<T, keyof CallOptions>;

export function extractMemories(
  messages: readonly ConversationMessage[],
  o: Fields<ExtractOptions> = {},
): pb.ExtractMemoriesRequest {
  const request = create(pb.ExtractMemoriesRequestSchema, {
    scope: scope(o),
    requestId: o.requestId ?? "",
    wait: Boolean(o.wait),
    messages: messages.map((m) => {
      const out = create(pb.ConversationMessageSchema, { role: m.role, content: m.content, name: m.name ?? "" });
      if (m.time != null) {
        out.time = timeToProto(m.time, "time");
      }
      return out;
    }),
  });
  if (o.metadata) {
    request.metadata = toStruct(o.metadata);
  }
  if (o.mode != null) {
    request.mode = enumToProto(ENUMS.ExtractionMode, o.mode);
  }
  return request;
}

export function getOperation(id: string): pb.GetOperationRequest {
  return create(pb.GetOperationRequestSchema, { id });
}

export function listOperations(o: Fields<ListOperationsOptions> = {}): pb.ListOperationsRequest {
  const request = create(pb.ListOperationsRequestSchema, {
    scope: scope(o),
    pageSize: o.pageSize ?? 0,
    pageToken: o.pageToken ?? "",
  });
  if (o.state != null) {
    request.state = enumToProto(ENUMS.OperationState, o.state);
  }
  return request;
}

export function operation(o: pb.Operation): Operation {
  const state = enumFromProto<OperationState>(ENUMS.OperationState, o.state);
  return {
    id: o.id,
    state,
    userId: o.scope?.userId ?? "",
    agentId: o.scope?.agentId ?? "",
    runId: o.scope?.runId ?? "",
    mode: enumFromProto<ExtractionMode>(ENUMS.ExtractionMode, o.mode),
    requestId: o.requestId,
    createTime: timeFromProto(o.createTime),
    updateTime: timeFromProto(o.updateTime),
    attempts: o.attempts,
    errorReason: o.error?.reason ?? "",
    errorMessage: o.error?.message ?? "",
    facts: (o.result?.facts ?? []).map((f) => ({
      event: enumFromProto<FactEvent>(ENUMS.FactEvent, f.event),
      text: f.text,
      memory: f.memory ? memory(f.memory) : null,
      before: f.before ? memory(f.before) : null,
      after: f.after ? memory(f.after) : null,
      revision: f.revision,
      raw: f,
    })),
    revision: o.result?.revision ?? 0n,
    done: state === "SUCCEEDED" || state === "FAILED",
    raw: o,
  };
}

export const OperationSchema = pb.OperationSchema;

export function operationPage(r: pb.ListOperationsResponse): OperationPage {
  return { operations: r.operations.map(operation), nextPageToken: r.nextPageToken, raw: r };
}
