// Talking to the dashboard's server side: the session (sign in and out) and
// the server's RPCs, called as the session's key. The CSRF token is kept in
// memory only; the session cookie is HttpOnly and never seen here.

let csrfToken = "";
let onSignedOut = () => {};

/** A failed call: Connect code, stable reason, field violations, message. */
export class RpcError extends Error {
  constructor(status, body) {
    super(body.message || `HTTP ${status}`);
    this.status = status;
    this.code = body.code || "unknown";
    this.reason = "";
    this.violations = [];
    for (const detail of body.details || []) {
      const debug = detail.debug || {};
      if (detail.type === "google.rpc.ErrorInfo") this.reason = debug.reason || "";
      if (detail.type === "google.rpc.BadRequest") this.violations = debug.fieldViolations || [];
    }
  }

  /** The text shown to the person: what went wrong, in their terms first. */
  describe() {
    const lines = [];
    if (this.reason === "ETAG_MISMATCH") {
      lines.push("This memory changed since you opened it (its etag no longer matches): nothing was written. Reload it to see the latest version.");
    } else if (this.code === "permission_denied") {
      lines.push("Your key may not do this: the server refused it.");
    } else if (this.code === "unauthenticated") {
      lines.push("Not signed in, or the key stopped working.");
    }
    lines.push(`${this.code}${this.reason ? " " + this.reason : ""}: ${this.message}`);
    for (const v of this.violations) lines.push(`  ${v.field}: ${v.description}`);
    return lines.join("\n");
  }
}

export function setSignedOutHandler(fn) {
  onSignedOut = fn;
}

function headers(extra = {}) {
  return { "x-csrf-token": csrfToken, ...extra };
}

async function answer(response) {
  const text = await response.text();
  let body = {};
  try {
    body = text ? JSON.parse(text) : {};
  } catch {
    body = { message: text.slice(0, 200) };
  }
  if (!response.ok) {
    const error = new RpcError(response.status, body);
    if (response.status === 401) onSignedOut(error);
    throw error;
  }
  return body;
}

/** The current session ({keyId, admin}) or null. */
export async function session() {
  const response = await fetch("api/session", { credentials: "same-origin" });
  if (response.status === 401) return null;
  const who = await answer(response);
  csrfToken = who.csrfToken;
  return who;
}

export async function signIn(key) {
  const response = await fetch("api/session", {
    method: "POST",
    credentials: "same-origin",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ key }),
  });
  const who = await answer(response);
  csrfToken = who.csrfToken;
  return who;
}

export async function signOut() {
  await fetch("api/signout", { method: "POST", credentials: "same-origin", headers: headers() });
  csrfToken = "";
}

export async function overview() {
  return answer(await fetch("api/overview", { credentials: "same-origin", headers: headers() }));
}

/** A unary RPC: rpc("MemoryService", "GetMemory", {id}). */
export async function rpc(service, method, body) {
  const response = await fetch(`api/rpc/mnemo.v1.${service}/${method}`, {
    method: "POST",
    credentials: "same-origin",
    headers: headers({ "content-type": "application/json" }),
    body: JSON.stringify(body || {}),
  });
  return answer(response);
}

function envelope(message) {
  const data = new TextEncoder().encode(JSON.stringify(message));
  const out = new Uint8Array(5 + data.length);
  new DataView(out.buffer).setUint32(1, data.length);
  out.set(data, 5);
  return out;
}

/** A server-streaming RPC (Connect envelopes over fetch): calls onMessage
 * for each message until the stream ends or `signal` aborts it. */
export async function stream(service, method, body, onMessage, signal) {
  const response = await fetch(`api/rpc/mnemo.v1.${service}/${method}`, {
    method: "POST",
    credentials: "same-origin",
    headers: headers({ "content-type": "application/connect+json" }),
    body: envelope(body || {}),
    signal,
  });
  if (!response.ok) await answer(response);
  const reader = response.body.getReader();
  let buffer = new Uint8Array(0);
  for (;;) {
    const { value, done } = await reader.read();
    if (done) throw new RpcError(0, { code: "unavailable", message: "the stream ended without its last message" });
    const joined = new Uint8Array(buffer.length + value.length);
    joined.set(buffer);
    joined.set(value, buffer.length);
    buffer = joined;
    while (buffer.length >= 5) {
      const view = new DataView(buffer.buffer, buffer.byteOffset);
      const flags = view.getUint8(0);
      const size = view.getUint32(1);
      if (buffer.length < 5 + size) break;
      const message = JSON.parse(new TextDecoder().decode(buffer.slice(5, 5 + size)));
      buffer = buffer.slice(5 + size);
      if (flags & 2) {
        if (message.error) throw new RpcError(0, message.error);
        return;
      }
      onMessage(message);
    }
  }
}
