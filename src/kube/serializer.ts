// The client library's model serializer, so that objects arriving over a watch (raw JSON) have the
// same shape as objects from typed API calls (Date fields as Date). The library does not export
// it from its root, hence the deep import, kept in this one place.
import { ObjectSerializer } from "@kubernetes/client-node/dist/gen/models/ObjectSerializer.js";

/** Decodes raw API JSON into the library's model, e.g. `decode(json, "V1Pod")`. */
export function decode<T>(raw: unknown, typeName: string): T {
  return ObjectSerializer.deserialize(raw, typeName, "") as T;
}

/** Encodes a model into the JSON the API server expects. */
export function encode(model: unknown, typeName: string): unknown {
  return ObjectSerializer.serialize(model, typeName, "");
}
