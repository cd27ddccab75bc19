// One memory: its fields, metadata, links and history; edit and delete
// with its etag, so a change made meanwhile is never overwritten.
import { rpc } from "./api.js";
import { $, clear, el, kindName, list, showError, table, when } from "./dom.js";

let current = null;

function fields(m) {
  const rows = [
    ["content", m.content],
    ["user", m.userId],
    ["agent", m.agentId],
    ["run", m.runId],
    ["kind", kindName(m.kind)],
    ["tags", (m.tags || []).join(", ")],
    ["pinned", m.pinned ? "yes" : "no"],
    ["version", m.version],
    ["revision", m.revision],
    ["etag", m.etag],
    ["created", when(m.createTime)],
    ["updated", when(m.updateTime)],
    ["expires", when(m.expireTime) || "never"],
    ["last retrieved", when(m.lastRetrieveTime) || "never"],
    ["embedding model", m.embeddingModel],
    ["content hash", m.contentHash],
  ];
  const body = table([["field", (r) => r[0]], ["value", (r) => r[1] ?? "", "content"]], rows.filter((r) => r[1] !== undefined && r[1] !== ""));
  const metadata = el("pre", { id: "detail-metadata" }, JSON.stringify(m.metadata || {}, null, 2));
  return [body, el("h3", {}, "Metadata"), metadata];
}

function fillForm(m) {
  const form = $("edit-form");
  form.elements.content.value = m.content || "";
  form.elements.kind.value = m.kind || "MEMORY_KIND_EPISODIC";
  form.elements.tags.value = (m.tags || []).join(", ");
  form.elements.pinned.checked = Boolean(m.pinned);
}

async function history(id) {
  const answer = await rpc("MemoryService", "GetMemoryHistory", { id, pageSize: 50 });
  const versions = answer.versions || [];
  return table(
    [
      ["version", (v) => v.version],
      ["change", (v) => (v.changeType || "").replace("CHANGE_TYPE_", "").toLowerCase()],
      ["when", (v) => when(v.changeTime)],
      ["by key", (v) => v.apiKeyId || ""],
      ["fields", (v) => v.changedFields || ""],
      ["content after", (v) => (v.after ? v.after.content : "(gone)"), "content"],
    ],
    versions,
  );
}

/** Opens memory `id` in the side panel. */
export async function open(id) {
  $("detail").hidden = false;
  $("detail-id").textContent = id;
  $("edit-result").textContent = "";
  $("detail-delete-confirm").hidden = true;
  showError($("detail-error"), "");
  clear($("detail-fields"));
  clear($("detail-links"));
  clear($("detail-history"));
  try {
    const { memory } = await rpc("MemoryService", "GetMemory", { id });
    current = memory;
    $("detail-fields").append(...fields(memory));
    fillForm(memory);
    const links = memory.links || [];
    $("detail-links").append(
      links.length
        ? table([["relation", (l) => l.relation], ["to", (l) => l.targetId], ["weight", (l) => l.weight || 0]], links, (l) => open(l.targetId))
        : el("p", { className: "muted" }, "No links."),
    );
    $("detail-history").append(await history(id));
  } catch (error) {
    showError($("detail-error"), error);
  }
}

export function close() {
  $("detail").hidden = true;
  current = null;
}

async function save(event) {
  event.preventDefault();
  if (!current) return;
  const form = $("edit-form");
  showError($("detail-error"), "");
  $("edit-result").textContent = "";
  const memory = {
    id: current.id,
    content: form.elements.content.value,
    kind: form.elements.kind.value,
    tags: list(form.elements.tags.value),
    pinned: form.elements.pinned.checked,
  };
  try {
    const answer = await rpc("MemoryService", "UpdateMemory", {
      memory,
      updateMask: "content,kind,tags,pinned",
      etag: current.etag,
    });
    current = answer.memory;
    $("edit-result").textContent = `Saved: version ${current.version}.`;
    await open(current.id);
    $("edit-result").textContent = `Saved: version ${current.version}.`;
  } catch (error) {
    showError($("detail-error"), error);
  }
}

async function remove() {
  if (!current) return;
  showError($("detail-error"), "");
  try {
    await rpc("MemoryService", "DeleteMemory", { id: current.id, etag: current.etag });
    $("detail-delete-confirm").hidden = true;
    clear($("detail-fields")).append(el("p", {}, "Deleted."));
    current = null;
  } catch (error) {
    $("detail-delete-confirm").hidden = true;
    showError($("detail-error"), error);
  }
}

export function init() {
  $("edit-form").addEventListener("submit", save);
  $("detail-close").addEventListener("click", close);
  $("detail-reload").addEventListener("click", () => open($("detail-id").textContent));
  $("detail-delete").addEventListener("click", () => {
    $("detail-delete-confirm").hidden = false;
  });
  $("detail-delete-confirm").addEventListener("click", remove);
}
