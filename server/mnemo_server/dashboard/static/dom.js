// Building the page from data: every piece of data goes in as text (a text
// node or textContent), never as HTML, so memory content cannot run script.

/** An element: el("td", {className: "x"}, "text", child, ...). */
export function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(props)) {
    if (name === "dataset") Object.assign(node.dataset, value);
    else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else node[name] = value;
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

export function $(id) {
  return document.getElementById(id);
}

export function clear(node) {
  node.replaceChildren();
  return node;
}

/** A table of rows: columns are [heading, row => cell text or node]. */
export function table(columns, rows, onClick) {
  const head = el("tr", {}, columns.map(([heading]) => el("th", {}, heading)));
  const body = rows.map((row) => {
    const tr = el("tr", onClick ? { className: "clickable", onclick: () => onClick(row) } : {});
    for (const [, cell, className] of columns) tr.append(el("td", className ? { className } : {}, cell(row)));
    return tr;
  });
  return el("table", {}, el("thead", {}, head), el("tbody", {}, body));
}

/** The values of a form's named fields, strings trimmed, checkboxes as booleans. */
export function values(form) {
  const out = {};
  for (const field of form.elements) {
    if (!field.name) continue;
    out[field.name] = field.type === "checkbox" ? field.checked : field.value.trim();
  }
  return out;
}

/** A scope message from a form's userId / agentId / runId, or undefined. */
export function scopeOf(v) {
  const scope = {};
  for (const name of ["userId", "agentId", "runId"]) if (v[name]) scope[name] = v[name];
  return Object.keys(scope).length ? scope : undefined;
}

export function list(text) {
  return text.split(",").map((s) => s.trim()).filter(Boolean);
}

export function when(timestamp) {
  return timestamp ? new Date(timestamp).toLocaleString() : "";
}

export function short(text, n = 160) {
  return text && text.length > n ? text.slice(0, n - 1) + "…" : text || "";
}

/** Shows an error (an RpcError or any Error) as text in `node`; "" clears it. */
export function showError(node, error) {
  node.textContent = error ? (error.describe ? error.describe() : String(error.message || error)) : "";
}

export function kindName(kind) {
  return (kind || "MEMORY_KIND_EPISODIC").replace("MEMORY_KIND_", "").toLowerCase();
}

/** Marks the form fields an error's field violations name ("filter",
 * "top_k", "scope.user_id") with aria-invalid; clears the others. */
export function markInvalid(form, error) {
  const named = new Set(
    (error && error.violations ? error.violations : []).map((v) =>
      v.field.split(".").pop().replace(/_([a-z])/g, (_, c) => c.toUpperCase()),
    ),
  );
  for (const field of form.elements) {
    if (!field.name) continue;
    if (named.has(field.name)) field.setAttribute("aria-invalid", "true");
    else field.removeAttribute("aria-invalid");
  }
}
