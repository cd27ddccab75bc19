// Browsing memories: scope, filter (its errors inline), order, pages.
import { rpc } from "./api.js";
import { $, clear, el, kindName, markInvalid, scopeOf, short, showError, table, values, when } from "./dom.js";
import { open } from "./detail.js";

let request = null;

export function memoryColumns() {
  return [
    ["id", (m) => m.id],
    ["user", (m) => m.userId || ""],
    ["agent", (m) => m.agentId || ""],
    ["kind", (m) => kindName(m.kind)],
    ["tags", (m) => (m.tags || []).join(", ")],
    ["content", (m) => short(m.content), "content"],
    ["updated", (m) => when(m.updateTime)],
  ];
}

async function list(pageToken) {
  showError($("browse-error"), "");
  const v = values($("browse-form"));
  request = {
    scope: scopeOf(v),
    filter: v.filter || undefined,
    orderBy: v.orderBy || undefined,
    pageSize: Number(v.pageSize) || undefined,
    pageToken: pageToken || undefined,
  };
  try {
    const answer = await rpc("MemoryService", "ListMemories", request);
    markInvalid($("browse-form"), null);
    const memories = answer.memories || [];
    const results = clear($("browse-results"));
    results.append(
      memories.length ? table(memoryColumns(), memories, (m) => open(m.id)) : el("p", { className: "muted" }, "No memories."),
    );
    $("browse-next").hidden = !answer.nextPageToken;
    $("browse-next").dataset.token = answer.nextPageToken || "";
  } catch (error) {
    clear($("browse-results"));
    $("browse-next").hidden = true;
    showError($("browse-error"), error);
    markInvalid($("browse-form"), error);
  }
}

export function init() {
  $("browse-form").addEventListener("submit", (event) => {
    event.preventDefault();
    list("");
  });
  $("browse-next").addEventListener("click", () => list($("browse-next").dataset.token));
}

export function show() {
  if (request === null) list("");
}
