// The console's parts: problem boxes, "not on this server yet", confirmation dialogs, forms with labels, and
// lists that page with the API's cursor.

import {Problem, isMissingRoute} from "./api.js";
import {append, clear, h, replace, uid} from "./dom.js";

/** The API's problem detail (and each field's messages), in a live region. */
export function problemBox(error) {
  const box = h("div", {class: "problem", role: "alert"});
  const detail = error instanceof Problem ? error.detail : (error && error.message) || String(error);
  append(box, [h("strong", {text: "Not done: "}), detail]);
  if (error instanceof Problem) {
    const fields = Object.entries(error.errors || {});
    if (fields.length) {
      box.append(h("ul", {}, fields.map(([name, messages]) =>
        h("li", {}, h("code", {text: name}), ": ", [].concat(messages).join(" ")))));
    }
    if (error.code) box.append(h("p", {class: "code"}, "code: ", h("code", {text: error.code})));
  }
  return box;
}

export function unavailable(what) {
  return h("div", {class: "unavailable", role: "note"},
    h("strong", {text: `${what} are not available on this server yet.`}),
    h("p", {text: "The API this screen uses is not on this server; the screen fills in as soon as it is."}));
}

/** Show an error in `slot`: "not available" for a route the server lacks, else the problem's detail. */
export function showError(slot, error, what) {
  replace(slot, what && isMissingRoute(error) ? unavailable(what) : problemBox(error));
}

export function say(text) {
  const status = document.getElementById("status");
  if (status) { status.textContent = ""; setTimeout(() => { status.textContent = text; }, 30); }
}

/** A real <dialog> asking before anything destructive: resolves true only on the confirming button. */
export function confirmAction({title, message, confirm = "Yes, do it", danger = true}) {
  return new Promise((resolve) => {
    const titleId = uid("dlg");
    const cancelButton = h("button", {type: "button", class: "secondary", text: "Cancel"});
    const okButton = h("button", {type: "button", class: danger ? "danger" : "primary", text: confirm});
    const dialog = h("dialog", {class: "confirm", "aria-labelledby": titleId},
      h("h2", {id: titleId, text: title}), h("p", {text: message}),
      h("div", {class: "actions"}, cancelButton, okButton));
    let answer = false;
    cancelButton.addEventListener("click", () => dialog.close());
    okButton.addEventListener("click", () => { answer = true; dialog.close(); });
    dialog.addEventListener("close", () => { dialog.remove(); resolve(answer); });
    document.body.append(dialog);
    dialog.showModal();
    cancelButton.focus(); // the safe choice has the focus: Enter does not destroy anything
  });
}

/** A labelled field: {label, name, type, value, required, options: [[value, text]], hint, rows, ...attrs}. */
export function field(spec) {
  const id = uid(spec.name || "f");
  const {label, hint, options, rows, type = "text", ...attrs} = spec;
  let input;
  if (options) {
    input = h("select", {id, name: spec.name, required: spec.required},
      options.map(([value, text]) => h("option", {value, text: text ?? value})));
    if (spec.value !== undefined) input.value = spec.value;
  } else if (type === "textarea") {
    input = h("textarea", {id, ...attrs, rows: rows || 4});
    if (spec.value !== undefined) input.value = spec.value;
  } else {
    input = h("input", {id, type, ...attrs});
  }
  const hintId = hint ? uid("hint") : null;
  if (hintId) input.setAttribute("aria-describedby", hintId);
  if (type === "checkbox") {
    return h("div", {class: "field check"}, input, h("label", {for: id, text: label}),
      hint ? h("small", {id: hintId, text: hint}) : null);
  }
  return h("div", {class: "field"}, h("label", {for: id, text: label}), input,
    hint ? h("small", {id: hintId, text: hint}) : null);
}

/**
 * A form that calls `submit(values, form)` (values: name -> string, checkboxes -> boolean), disables its button
 * meanwhile, and shows the API's problem under it. The form keeps what was typed whatever happens.
 */
export function form({label, fields, submitText = "Save", submit, extra}) {
  const result = h("div", {class: "result", "aria-live": "polite"});
  const button = h("button", {type: "submit", class: "primary", text: submitText});
  const el = h("form", {class: "panel", "aria-label": label, novalidate: false},
    label ? h("h3", {text: label}) : null, fields, extra || null, h("div", {class: "actions"}, button), result);
  el.addEventListener("submit", async (event) => {
    event.preventDefault();
    if (!el.reportValidity()) return;
    button.disabled = true;
    clear(result);
    try {
      await submit(values(el), el, result);
    } catch (error) {
      replace(result, problemBox(error));
    } finally {
      button.disabled = false;
    }
  });
  return el;
}

export function values(formEl) {
  const out = {};
  for (const el of formEl.elements) {
    if (!el.name) continue;
    out[el.name] = el.type === "checkbox" ? el.checked : el.value;
  }
  return out;
}

/** An optional number field's value, or null when left empty. */
export function optionalInt(value) {
  if (value === "" || value === undefined || value === null) return null;
  return Number.parseInt(value, 10);
}

/** Parse a JSON text field, naming it when it is not JSON. */
export function parseJSON(text, name) {
  if (!text || !text.trim()) return undefined;
  try { return JSON.parse(text); } catch (err) {
    throw new Problem(422, {code: "validation_error", detail: `${name} is not valid JSON: ${err.message}`,
      errors: {[name]: ["Not valid JSON."]}});
  }
}

/**
 * A table of a cursor list that pages: load(cursor) -> {items, next_cursor}. Columns: [[heading, item -> text or
 * node]]. Previous/Next keep a stack of cursors, as the API pages forwards only.
 */
export function pagedTable({caption, columns, load, what, empty = "Nothing here yet."}) {
  const wrap = h("div", {class: "paged"});
  const body = h("div", {class: "table-slot"});
  const prev = h("button", {type: "button", class: "secondary", text: "Previous page", disabled: true});
  const next = h("button", {type: "button", class: "secondary", text: "Next page", disabled: true});
  const where = h("span", {class: "page-no", "aria-live": "polite"});
  const pager = h("div", {class: "pager", role: "group", "aria-label": `Pages of ${caption || what || "the list"}`},
    prev, where, next);
  const stack = [null]; // cursors of the pages shown so far; the last one is the current page's
  let nextCursor = null;

  async function show() {
    prev.disabled = next.disabled = true;
    body.setAttribute("aria-busy", "true");
    try {
      const page = await load(stack[stack.length - 1]);
      nextCursor = page.next_cursor || null;
      const items = page.items || [];
      replace(body, items.length ? table(caption, columns, items) : h("p", {class: "empty", text: empty}));
      where.textContent = `Page ${stack.length}`;
      prev.disabled = stack.length < 2;
      next.disabled = !nextCursor;
      pager.hidden = false;
    } catch (error) {
      showError(body, error, what);
      pager.hidden = stack.length < 2; // nothing to page through (a way back stays)
      prev.disabled = stack.length < 2;
    } finally {
      body.removeAttribute("aria-busy");
    }
  }
  prev.addEventListener("click", () => { if (stack.length > 1) { stack.pop(); show(); } });
  next.addEventListener("click", () => { if (nextCursor) { stack.push(nextCursor); show(); } });
  append(wrap, [body, pager]);
  wrap.reload = () => { stack.length = 1; return show(); };
  wrap.refresh = () => show();
  show();
  return wrap;
}

export function table(caption, columns, items) {
  return h("div", {class: "table-wrap"}, h("table", {},
    caption ? h("caption", {text: caption}) : null,
    h("thead", {}, h("tr", {}, columns.map(([heading]) => h("th", {scope: "col", text: heading})))),
    h("tbody", {}, items.map((item) => h("tr", {}, columns.map(([, cell]) => {
      const value = cell(item);
      return h("td", {}, value instanceof Node ? value : value === null || value === undefined ? "—" : String(value));
    }))))));
}

/** A definition list of label/value pairs. */
export function facts(pairs) {
  return h("dl", {class: "facts"}, pairs.map(([k, v]) => [h("dt", {text: k}),
    h("dd", {}, v instanceof Node ? v : v === null || v === undefined || v === "" ? "—" : String(v))]));
}

export function screen(title, ...children) {
  const heading = h("h1", {text: title, tabindex: "-1"});
  return h("section", {class: "screen", "aria-labelledby": heading.id = uid("h")}, heading, children);
}

export function button(text, onClick, cls = "secondary") {
  return h("button", {type: "button", class: cls, text, on: {click: onClick}});
}

/** A button that asks first (a <dialog>), then runs `action`; its problem shows in `slot`. */
export function dangerButton(text, {title, message, confirm}, action, slot) {
  return button(text, async (event) => {
    const target = event.currentTarget;
    if (!(await confirmAction({title, message, confirm: confirm || text}))) return;
    target.disabled = true;
    try {
      await action();
    } catch (error) {
      if (slot) replace(slot, problemBox(error)); else say(error.message);
    } finally {
      target.disabled = false;
    }
  }, "danger");
}
