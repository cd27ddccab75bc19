// The generated mnemo.v1 messages, enums and service descriptors, and the
// google.rpc details the server sends, for use with `client.stub`.
export * from "./gen/mnemo/v1/memory_pb.js";
export * from "./gen/mnemo/v1/memory_service_pb.js";
export * from "./gen/mnemo/v1/admin_service_pb.js";
export * from "./gen/mnemo/v1/extraction_service_pb.js";
export * from "./gen/mnemo/v1/errors_pb.js";
export * from "./gen/google/rpc/error_details_pb.js";
export * from "./gen/google/rpc/status_pb.js";
