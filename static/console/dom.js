// Building the page: every piece of text goes in as text (a text node or textContent), never as HTML, so a
// product or member named <img src=x onerror=...> shows those characters and runs nothing.

let ids = 0;
export function uid(prefix = "f") { ids += 1; return `${prefix}-${ids}`; }

/**
 * h("button", {class: "primary", type: "button", on: {click}}, "Save")
 * Props: class, text, on {event: fn}, dataset {k: v}, hidden/disabled/checked/value/... (set as properties when
 * the element has them, else as attributes). Children: nodes, strings (text), numbers, arrays, null (skipped).
 */
export function h(tag, props = {}, ...children) {
  const el = tag === "svg" || SVG_TAGS.has(tag)
    ? document.createElementNS("http://www.w3.org/2000/svg", tag) : document.createElement(tag);
  for (const [key, value] of Object.entries(props || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") el.setAttribute("class", value);
    else if (key === "text") el.textContent = String(value);
    else if (key === "on") for (const [name, fn] of Object.entries(value)) el.addEventListener(name, fn);
    else if (key === "dataset") Object.assign(el.dataset, value);
    else if (key.startsWith("on")) throw new Error("use on: {...}, not " + key); // no handler attributes
    else if (!(el instanceof SVGElement) && key in el && typeof el[key] !== "function") el[key] = value;
    else el.setAttribute(key, value === true ? "" : String(value));
  }
  append(el, children);
  return el;
}

const SVG_TAGS = new Set(["g", "path", "line", "polyline", "circle", "rect", "text", "title", "desc"]);

export function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

export function clear(el) { while (el.firstChild) el.removeChild(el.firstChild); return el; }

export function replace(el, ...children) { clear(el); return append(el, children); }

const numbers = new Intl.NumberFormat("en");
const percent = new Intl.NumberFormat("en", {style: "percent", maximumFractionDigits: 1});

export function num(value) {
  if (value === null || value === undefined || value === "") return "—";
  const n = Number(value);
  return Number.isFinite(n) ? numbers.format(n) : String(value);
}

export function pct(value) {
  if (value === null || value === undefined) return "—";
  const n = Number(value);
  return Number.isFinite(n) ? percent.format(n) : String(value);
}

export function when(value) {
  if (!value) return "—";
  const d = new Date(value);
  if (Number.isNaN(d.getTime())) return String(value);
  return d.toLocaleString("en-GB", {dateStyle: "medium", timeStyle: "short", timeZone: "UTC"}) + " UTC";
}

/** `<input type=datetime-local>` value (UTC) to the API's ISO 8601 with Z, or null. */
export function isoFromLocal(value) {
  if (!value) return null;
  return value.length === 16 ? value + ":00Z" : value.endsWith("Z") ? value : value + "Z";
}

export function json(value) {
  return value === null || value === undefined ? "" : JSON.stringify(value);
}
