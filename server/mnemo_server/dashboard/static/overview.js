// The overview: health and version, memories per tenant and scope, index
// shards, caches, revisions (GetStats, as the session's key), and for admins
// request rates and latencies (the metrics registry) and the settings.
import { overview, rpc } from "./api.js";
import { $, clear, el, showError, table } from "./dom.js";

const REFRESH_MS = 5000;
let timer = null;
let admin = false;
let previous = null;

export function setAdmin(value) {
  admin = value;
}

function card(label, value, className = "") {
  return el("div", { className: "card" }, el("span", { className: "muted" }, label), el("b", { className }, value));
}

function scopeText(scope) {
  const s = scope || {};
  return [s.userId && `user ${s.userId}`, s.agentId && `agent ${s.agentId}`, s.runId && `run ${s.runId}`].filter(Boolean).join(" · ") || "(none)";
}

function stats(answer) {
  const out = [];
  out.push(
    el("div", { className: "cards" },
      card("revision", answer.revision || "0"),
      card("feed replays from", answer.oldestRevision || "0"),
      card("model", `${answer.embeddingModel} (${answer.dimension})`),
    ),
  );
  for (const tenant of answer.tenants || []) {
    out.push(el("h3", {}, `Tenant ${tenant.tenant}: ${tenant.memoryCount || 0} memories, ${tenant.contentBytes || 0} bytes`));
    out.push(table([["scope", (s) => scopeText(s.scope)], ["memories", (s) => s.memoryCount || "0"]], tenant.scopes || []));
  }
  out.push(el("h3", {}, "Index shards"));
  out.push(
    table(
      [
        ["shard", (s) => s.shardId],
        ["kind", (s) => (s.kind || "").replace("INDEX_KIND_", "").toLowerCase()],
        ["why", (s) => s.kindReason || ""],
        ["vectors", (s) => s.vectorCount || "0"],
        ["dimension", (s) => s.dimension],
        ["memory bytes", (s) => s.memoryBytes || "0"],
        ["snapshot revision", (s) => s.snapshotRevision || "0"],
      ],
      answer.shards || [],
    ),
  );
  out.push(el("h3", {}, "Caches"));
  out.push(
    table(
      [
        ["cache", (c) => c.name],
        ["backend", (c) => c.backend],
        ["state", (c) => c.state],
        ["hit rate", (c) => `${((c.hitRate || 0) * 100).toFixed(1)} %`],
        ["hits", (c) => c.hits || "0"],
        ["misses", (c) => c.misses || "0"],
        ["errors", (c) => c.errors || "0"],
        ["bytes", (c) => c.bytes || "0"],
      ],
      answer.caches || [],
    ),
  );
  if ((answer.retentionPolicies || []).length) {
    out.push(el("h3", {}, "Retention"));
    out.push(
      table(
        [
          ["tenant", (p) => p.tenant],
          ["scope", (p) => scopeText(p.scope)],
          ["max age", (p) => p.maxAge || ""],
          ["max count", (p) => p.maxCount || ""],
        ],
        answer.retentionPolicies,
      ),
    );
  }
  return out;
}

function ms(seconds) {
  return seconds === null || seconds === undefined ? "" : `${(seconds * 1000).toFixed(1)} ms`;
}

function metrics(m, elapsed) {
  if (!m) return el("p", { className: "muted" }, "Request metrics are off (set metrics.address).");
  const before = new Map((previous || []).map((r) => [`${r.service}/${r.method}`, r.started]));
  const rows = m.methods.filter((r) => r.started > 0);
  const rate = (r) => {
    const was = before.get(`${r.service}/${r.method}`);
    return was === undefined || !elapsed ? "" : `${((r.started - was) / elapsed).toFixed(2)}/s`;
  };
  previous = m.methods;
  const errors = (r) => Object.entries(r.codes).filter(([code]) => code !== "OK").map(([code, n]) => `${code} ${n}`).join(", ");
  return table(
    [
      ["rpc", (r) => `${r.service.replace("mnemo.v1.", "")}/${r.method}`],
      ["calls", (r) => r.started],
      ["rate", rate],
      ["p50", (r) => ms(r.p50_s)],
      ["p95", (r) => ms(r.p95_s)],
      ["p99", (r) => ms(r.p99_s)],
      ["mean", (r) => (r.count ? ms(r.sum_s / r.count) : "")],
      ["not OK", errors],
    ],
    rows,
  );
}

function settings(all) {
  const rows = [];
  for (const [section, values] of Object.entries(all || {})) {
    for (const [name, value] of Object.entries(values)) rows.push([`${section}.${name}`, JSON.stringify(value)]);
  }
  return table([["setting", (r) => r[0]], ["value", (r) => r[1], "content"]], rows);
}

let lastLoad = 0;

async function load() {
  const now = performance.now();
  const elapsed = lastLoad ? (now - lastLoad) / 1000 : 0;
  lastLoad = now;
  try {
    const info = await overview();
    showError($("ov-error"), "");
    $("ov-summary").replaceChildren(
      el("span", { className: info.healthy ? "ok" : "bad" }, info.healthy ? "● serving" : "● not serving"),
      ` · Mnemo ${info.version}`,
    );
    if (info.admin) {
      $("ov-metrics").replaceChildren(metrics(info.metrics, elapsed));
      $("ov-settings").replaceChildren(settings(info.settings));
      const answer = await rpc("AdminService", "GetStats", { scopeLimit: 50 });
      clear($("ov-stats")).append(...stats(answer));
    } else {
      const note = "Statistics, request metrics and settings need an admin key (GetStats is an admin call).";
      $("ov-stats").replaceChildren(el("p", { className: "muted" }, note));
      clear($("ov-metrics"));
      clear($("ov-settings"));
    }
  } catch (error) {
    showError($("ov-error"), error);
  }
}

export function init() {}

export function show() {
  stop();
  previous = null;
  lastLoad = 0;
  load();
  timer = setInterval(() => {
    if (!$("tab-overview").hidden) load();
    else stop();
  }, REFRESH_MS);
}

export function stop() {
  if (timer) clearInterval(timer);
  timer = null;
}
