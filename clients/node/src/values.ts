// Metadata values: JavaScript JSON-like values <-> mnemo.v1.Value (the twin
// of the Python SDK's mnemo._values).
//
// null, booleans, numbers, bigints, strings, arrays and plain objects map to
// the Value kinds; anything else (undefined, Dates, class instances) is a
// TypeError. Whole numbers within the safe integer range and bigints within
// the signed 64-bit range are integers; every other number is a double, and
// `double(n)` sends a whole number as a double (Python's 1.0: JavaScript has
// one number type).

import { create } from "@bufbuild/protobuf";
import {
  ListValueSchema,
  NullValue,
  StructSchema,
  ValueSchema,
  type Value,
} from "./gen/mnemo/v1/memory_pb.js";
import type { MetadataValue } from "./types.js";

/** A metadata number that goes on the wire as a double even when it is whole; make it with `double(n)`. */
export class MetadataDouble {
  constructor(readonly value: number) {
    if (typeof value !== "number") {
      throw new TypeError("double() takes a number");
    }
    Object.freeze(this);
  }
}

/** Marks a metadata number as a double: `{ ratio: double(1) }` sends 1.0, not the integer 1. */
export function double(value: number): MetadataDouble {
  return new MetadataDouble(value);
}

const INT64_MIN = -(2n ** 63n);
const INT64_MAX = 2n ** 63n - 1n;

function isPlainObject(obj: unknown): obj is Record<string, unknown> {
  if (typeof obj !== "object" || obj === null) {
    return false;
  }
  const proto = Object.getPrototypeOf(obj) as unknown;
  return proto === Object.prototype || proto === null;
}

function describe(obj: unknown): string {
  if (obj === undefined) {
    return "undefined";
  }
  if (typeof obj === "object" && obj !== null) {
    return (obj as object).constructor?.name ?? "object";
  }
  return typeof obj;
}

/** Encodes a metadata value. */
export function toValue(obj: unknown, path = "metadata"): Value {
  if (obj === null) {
    return create(ValueSchema, { kind: { case: "nullValue", value: NullValue.UNSPECIFIED } });
  }
  switch (typeof obj) {
    case "boolean":
      return create(ValueSchema, { kind: { case: "boolValue", value: obj } });
    case "bigint":
      if (obj < INT64_MIN || obj > INT64_MAX) {
        throw new RangeError(`${path}: integer ${obj} is outside the signed 64-bit range`);
      }
      return create(ValueSchema, { kind: { case: "intValue", value: obj } });
    case "number":
      if (Number.isSafeInteger(obj) && !Object.is(obj, -0)) {
        return create(ValueSchema, { kind: { case: "intValue", value: BigInt(obj) } });
      }
      return create(ValueSchema, { kind: { case: "doubleValue", value: obj } });
    case "string":
      return create(ValueSchema, { kind: { case: "stringValue", value: obj } });
  }
  if (obj instanceof MetadataDouble) {
    return create(ValueSchema, { kind: { case: "doubleValue", value: obj.value } });
  }
  if (Array.isArray(obj)) {
    const values = obj.map((item: unknown, i) => toValue(item, `${path}[${i}]`));
    return create(ValueSchema, {
      kind: { case: "listValue", value: create(ListValueSchema, { values }) },
    });
  }
  if (isPlainObject(obj)) {
    return create(ValueSchema, {
      kind: { case: "structValue", value: create(StructSchema, { fields: toStruct(obj, path) }) },
    });
  }
  throw new TypeError(`${path}: ${describe(obj)} is not a metadata value`);
}

/** Encodes an object into a proto map<string, Value>. */
export function toStruct(obj: Readonly<Record<string, unknown>>, path = "metadata"): Record<string, Value> {
  if (!isPlainObject(obj)) {
    throw new TypeError(`${path}: ${describe(obj)} is not a metadata object`);
  }
  const fields: Record<string, Value> = {};
  for (const [key, item] of Object.entries(obj)) {
    fields[key] = toValue(item, `${path}.${key}`);
  }
  return fields;
}

/** Decodes a Value. */
export function fromValue(value: Value): MetadataValue {
  const kind = value.kind;
  switch (kind.case) {
    case undefined:
    case "nullValue":
      return null;
    case "listValue":
      return kind.value.values.map(fromValue);
    case "structValue":
      return fromStruct(kind.value.fields);
    case "intValue": {
      const n = kind.value;
      return n >= BigInt(Number.MIN_SAFE_INTEGER) && n <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(n) : n;
    }
    default:
      return kind.value;
  }
}

/** Decodes a proto map<string, Value>. */
export function fromStruct(fields: Readonly<Record<string, Value>>): Record<string, MetadataValue> {
  const out: Record<string, MetadataValue> = {};
  for (const [key, value] of Object.entries(fields)) {
    out[key] = fromValue(value);
  }
  return out;
}
