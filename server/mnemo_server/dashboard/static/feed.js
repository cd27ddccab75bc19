// The live change feed: WatchMemories streamed over fetch, newest first.
import { stream } from "./api.js";
import { $, el, scopeOf, short, showError, values, when } from "./dom.js";
import { open } from "./detail.js";

const MAX_ROWS = 200;
let controller = null;

function row(event) {
  const memory = event.memory || {};
  const tr = el(
    "tr",
    { className: "clickable", onclick: () => open(event.memoryId) },
    el("td", {}, when(event.eventTime)),
    el("td", {}, (event.type || "").replace("EVENT_TYPE_", "").toLowerCase()),
    el("td", {}, event.revision),
    el("td", {}, event.memoryId),
    el("td", { className: "content" }, short(memory.content)),
  );
  return tr;
}

export function stop() {
  if (controller) controller.abort();
  controller = null;
  $("feed-toggle").textContent = "Start";
}

async function start() {
  showError($("feed-error"), "");
  const v = values($("feed-form"));
  controller = new AbortController();
  const mine = controller;
  $("feed-toggle").textContent = "Stop";
  $("feed-status").textContent = "Connecting…";
  const body = $("feed-events").tBodies[0];
  const request = { scope: scopeOf(v), filter: v.filter || undefined, progressInterval: "2s" };
  try {
    await stream(
      "MemoryService",
      "WatchMemories",
      request,
      (message) => {
        for (const event of message.events || []) {
          body.prepend(row(event));
          while (body.rows.length > MAX_ROWS) body.deleteRow(-1);
        }
        $("feed-status").textContent = `Live: seen every change up to revision ${message.revision}.`;
      },
      mine.signal,
    );
    $("feed-status").textContent = "The feed ended.";
  } catch (error) {
    if (mine.signal.aborted) {
      $("feed-status").textContent = "Stopped.";
      return;
    }
    $("feed-status").textContent = "The feed stopped.";
    showError($("feed-error"), error);
  }
  if (controller === mine) stop();
}

export function init() {
  $("feed-form").addEventListener("submit", (event) => {
    event.preventDefault();
    if (controller) stop();
    else start();
  });
}

export function show() {
  if (!controller) start();
}
