// Safe DOM building: every id, name and label goes in through textContent or an attribute,
// never through innerHTML, so a customer called "<script>..." is shown as text.

/**
 * el("li", {class: "row", title: "x", dataset: {id: "7"}}, "text", childNode, ...)
 * Strings become text nodes; null/undefined/false children are skipped.
 */
export function el(tag, props, ...children) {
  const node = document.createElement(tag);
  if (props) {
    for (const [key, value] of Object.entries(props)) {
      if (value === null || value === undefined || value === false) continue;
      if (key === "class") node.className = value;
      else if (key === "text") node.textContent = String(value);
      else if (key === "dataset") Object.assign(node.dataset, value);
      else if (key.startsWith("on") && typeof value === "function") node.addEventListener(key.slice(2), value);
      else if (key === "style" && typeof value === "object") Object.assign(node.style, value);
      else node.setAttribute(key, value === true ? "" : String(value));
    }
  }
  append(node, children);
  return node;
}

function append(node, children) {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) append(node, child);
    else if (child instanceof Node) node.appendChild(child);
    else node.appendChild(document.createTextNode(String(child)));
  }
}

/** Replace all children of `node` (by id or element) with `children`. */
export function fill(node, ...children) {
  const target = typeof node === "string" ? document.getElementById(node) : node;
  target.replaceChildren();
  append(target, children);
  return target;
}

/** Set the text of the element with this id (no-op when absent). */
export function setText(id, value) {
  const node = document.getElementById(id);
  if (node) node.textContent = String(value);
}

export function $(id) {
  return document.getElementById(id);
}

export function clockTime(tsSeconds) {
  const d = new Date(tsSeconds * 1000);
  return d.toLocaleTimeString([], {hour: "2-digit", minute: "2-digit", second: "2-digit", hour12: false});
}

export function duration(seconds) {
  if (!Number.isFinite(seconds) || seconds < 0) return "–";
  const s = Math.round(seconds);
  if (s < 60) return `${s} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} min ${s % 60} s`;
  return `${Math.floor(m / 60)} h ${m % 60} min`;
}

export function money(value) {
  const n = Number(value);
  return Number.isFinite(n) ? n.toFixed(2) : "–";
}
