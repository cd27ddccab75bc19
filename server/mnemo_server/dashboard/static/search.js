// Searching with every retrieval option of SearchMemoriesRequest: query or
// vector, scope, filter, mode, top_k, min_score, rrf_k, explain, embeddings.
import { rpc } from "./api.js";
import { $, clear, el, markInvalid, scopeOf, short, showError, table, values } from "./dom.js";
import { open } from "./detail.js";

function number(text) {
  return text === "" ? undefined : Number(text);
}

export function requestOf(v) {
  const request = {
    scope: scopeOf(v),
    filter: v.filter || undefined,
    mode: v.mode,
    topK: number(v.topK),
    minScore: number(v.minScore),
    rrfK: number(v.rrfK),
    explain: v.explain || undefined,
    includeEmbedding: v.includeEmbedding || undefined,
  };
  if (v.vector) request.vector = v.vector.split(",").map((x) => Number(x.trim()));
  else request.query = v.query;
  return request;
}

function explanation(hit) {
  const e = hit.explanation;
  if (!e) return "";
  const parts = [];
  if (e.vectorRank !== undefined) parts.push(`vector #${e.vectorRank} (${(e.vectorScore ?? 0).toFixed(4)})`);
  if (e.keywordRank !== undefined) parts.push(`keyword #${e.keywordRank} (${(e.keywordScore ?? 0).toFixed(4)})`);
  if (e.fusedScore !== undefined) parts.push(`fused ${e.fusedScore.toFixed(5)}`);
  return parts.join(" · ") || "(no ranking part found it)";
}

async function search(event) {
  event.preventDefault();
  showError($("search-error"), "");
  const results = clear($("search-results"));
  const v = values($("search-form"));
  try {
    const answer = await rpc("MemoryService", "SearchMemories", requestOf(v));
    markInvalid($("search-form"), null);
    const hits = answer.hits || [];
    const columns = [
      ["score", (h) => (h.score ?? 0).toFixed(4)],
      ["id", (h) => h.memory.id],
      ["user", (h) => h.memory.userId || ""],
      ["content", (h) => short(h.memory.content), "content"],
    ];
    if (v.explain) columns.push(["explanation", explanation]);
    if (v.includeEmbedding) columns.push(["embedding", (h) => `${(h.memory.embedding || []).length} dimensions`]);
    results.append(
      el("p", { className: "muted" }, `${hits.length} hits${answer.embeddingModel ? ` · query embedded by ${answer.embeddingModel}` : ""}`),
      hits.length ? table(columns, hits, (h) => open(h.memory.id)) : "",
    );
  } catch (error) {
    showError($("search-error"), error);
    markInvalid($("search-form"), error);
  }
}

export function init() {
  $("search-form").addEventListener("submit", search);
}
