// For admin keys: API keys (create and show the secret once, list, revoke),
// forgetting a scope (a dry run first, then the same request for real) and
// export (ExportMemories streamed into a JSON-lines download).
import { rpc, stream } from "./api.js";
import { $, clear, el, list, markInvalid, scopeOf, showError, table, values, when } from "./dom.js";

let forgetRequest = null;

function roleName(role) {
  return (role || "").replace("API_KEY_ROLE_", "").toLowerCase();
}

async function createKey(event) {
  event.preventDefault();
  showError($("key-error"), "");
  const v = values($("key-form"));
  const box = clear($("key-secret"));
  box.hidden = true;
  try {
    const answer = await rpc("AdminService", "CreateApiKey", {
      role: v.role,
      displayName: v.displayName || undefined,
      userIds: list(v.userIds),
      agentIds: list(v.agentIds),
      tenant: v.tenant || undefined,
      ttl: v.ttl ? `${Number(v.ttl)}s` : undefined,
    });
    box.append(
      el("p", {}, `Key ${answer.apiKey.id} (${roleName(answer.apiKey.role)}, tenant ${answer.apiKey.tenant}) created. Copy its secret now: it is shown only this once.`),
      el("code", { id: "key-secret-value" }, answer.secret),
      " ",
      el("button", { type: "button", onclick: () => { clear(box); box.hidden = true; } }, "Done"),
    );
    box.hidden = false;
    $("key-form").reset();
    await listKeys();
  } catch (error) {
    showError($("key-error"), error);
  }
}

async function revoke(key, button) {
  if (button.dataset.armed !== "1") {
    button.dataset.armed = "1";
    button.textContent = "Really revoke";
    return;
  }
  showError($("keys-error"), "");
  try {
    await rpc("AdminService", "RevokeApiKey", { id: key.id });
    await listKeys();
  } catch (error) {
    showError($("keys-error"), error);
  }
}

async function listKeys(event) {
  if (event) event.preventDefault();
  showError($("keys-error"), "");
  const v = values($("keys-form"));
  try {
    const answer = await rpc("AdminService", "ListApiKeys", {
      tenant: v.tenant || undefined,
      showRevoked: v.showRevoked || undefined,
      pageSize: 1000,
    });
    const keys = answer.apiKeys || [];
    const action = (k) =>
      k.revokeTime ? "revoked" : el("button", { type: "button", className: "danger", onclick: (e) => revoke(k, e.target) }, "Revoke");
    clear($("keys-list")).append(
      table(
        [
          ["id", (k) => k.id],
          ["name", (k) => k.displayName || ""],
          ["tenant", (k) => k.tenant],
          ["role", (k) => roleName(k.role)],
          ["users", (k) => (k.userIds || []).join(", ")],
          ["agents", (k) => (k.agentIds || []).join(", ")],
          ["created", (k) => when(k.createTime)],
          ["expires", (k) => when(k.expireTime) || "never"],
          ["last used", (k) => when(k.lastUseTime)],
          ["", action],
        ],
        keys,
      ),
    );
  } catch (error) {
    showError($("keys-error"), error);
  }
}

async function dryRun(event) {
  event.preventDefault();
  showError($("forget-error"), "");
  $("forget-confirm").hidden = true;
  const v = values($("forget-form"));
  const request = { scope: scopeOf(v), filter: v.filter || undefined };
  try {
    const answer = await rpc("MemoryService", "DeleteMemories", { ...request, dryRun: true });
    markInvalid($("forget-form"), null);
    const count = Number(answer.deletedCount || 0);
    const ids = answer.memoryIds || [];
    clear($("forget-result")).append(
      el("p", { id: "forget-count" }, `Dry run: ${count} memories would be deleted. Nothing was deleted.`),
      ids.length ? el("pre", {}, ids.join("\n")) : "",
    );
    forgetRequest = count ? request : null;
    $("forget-confirm").textContent = `Delete these ${count} memories`;
    $("forget-confirm").hidden = !count;
  } catch (error) {
    showError($("forget-error"), error);
    markInvalid($("forget-form"), error);
  }
}

async function forget() {
  if (!forgetRequest) return;
  $("forget-confirm").hidden = true;
  try {
    const answer = await rpc("MemoryService", "DeleteMemories", forgetRequest);
    clear($("forget-result")).append(el("p", {}, `Deleted ${answer.deletedCount || 0} memories (revision ${answer.revision}).`));
  } catch (error) {
    showError($("forget-error"), error);
  }
  forgetRequest = null;
}

async function exportMemories(event) {
  event.preventDefault();
  showError($("export-error"), "");
  const v = values($("export-form"));
  const lines = [];
  $("export-result").textContent = "Exporting…";
  try {
    await stream(
      "MemoryService",
      "ExportMemories",
      { scope: scopeOf(v), filter: v.filter || undefined, omitEmbeddings: v.omitEmbeddings || undefined },
      (message) => lines.push(JSON.stringify(message)),
    );
    const url = URL.createObjectURL(new Blob([lines.join("\n") + "\n"], { type: "application/x-ndjson" }));
    const link = el("a", { href: url, download: "mnemo-export.jsonl", id: "export-link" }, "Download mnemo-export.jsonl");
    $("export-result").replaceChildren(`${Math.max(lines.length - 1, 0)} memories exported. `, link);
  } catch (error) {
    $("export-result").textContent = "";
    showError($("export-error"), error);
  }
}

export function init() {
  $("key-form").addEventListener("submit", createKey);
  $("keys-form").addEventListener("submit", listKeys);
  $("forget-form").addEventListener("submit", dryRun);
  $("forget-confirm").addEventListener("click", forget);
  $("export-form").addEventListener("submit", exportMemories);
  for (const name of ["userId", "agentId", "runId", "filter"]) {
    $("forget-form").elements[name].addEventListener("input", () => {
      $("forget-confirm").hidden = true;
      forgetRequest = null;
    });
  }
}

export function show() {
  listKeys();
}
