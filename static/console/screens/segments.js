// Segments (API.md "Segments"): criteria built with a form (all/any of conditions, each negatable), a live
// preview count (POST /admin/segments/preview, writing nothing), save, list, members, delete (asked first).

import * as api from "../api.js";
import {h, json, num, replace, uid} from "../dom.js";
import {button, dangerButton, field, form, pagedTable, say, screen, showError} from "../ui.js";

export const FIELDS = [
  ["tier", "text"], ["spend_30d", "money"], ["spend_90d", "money"], ["spend_365d", "money"],
  ["purchases_90d", "int"], ["purchases_365d", "int"], ["visits_90d", "int"], ["days_since_last_purchase", "int"],
  ["points_balance", "int"], ["age", "int"], ["gender", "text"], ["city", "text"], ["enrolled_days", "int"],
  ["preferences.email", "bool"], ["preferences.sms", "bool"], ["preferences.push", "bool"],
  ["consents.marketing_email", "bool"], ["consents.marketing_sms", "bool"], ["consents.marketing_push", "bool"],
  ["consents.profiling", "bool"], ["consents.social_data", "bool"], ["referrals", "int"], ["referral_value", "money"],
  ["influence", "text"],
];
const OPS = ["=", "!=", ">", ">=", "<", "<=", "in"];
let catalogue = FIELDS.map(([name, kind]) => ({name, kind, ops: OPS, choices: []}));
const KINDS = {integer: "int", decimal: "money", boolean: "bool", string: "text", enum: "text", tier: "text"};

/** The server's own list of fields (GET /admin/segments/fields) where it has one; else API.md's list above. */
async function loadCatalogue() {
  try {
    const answer = await api.get("/admin/segments/fields");
    if (Array.isArray(answer.items) && answer.items.length) {
      catalogue = answer.items.map((f) => ({name: f.name, kind: KINDS[f.type] || "text",
        ops: Array.isArray(f.ops) && f.ops.length ? f.ops : OPS, choices: f.choices || []}));
    }
  } catch (error) {
    // not on this server: API.md's fields
  }
}

/** A typed value for a condition: numbers for counts, booleans, a list for "in", strings for the rest. */
export function typed(fieldName, op, raw) {
  const spec = catalogue.find((f) => f.name === fieldName);
  const kind = spec ? spec.kind : "text";
  const one = (text) => {
    const t = text.trim();
    if (kind === "int") return Number.parseInt(t, 10);
    if (kind === "bool") return t === "true" || t === "yes" || t === "1";
    return t;
  };
  return op === "in" ? raw.split(",").filter((s) => s.trim()).map(one) : one(raw);
}

function conditionRow(onChange) {
  const id = uid("cond");
  const fieldSel = h("select", {id: `${id}-f`, "aria-label": "Field"},
    catalogue.map((f) => h("option", {value: f.name, text: f.name.replace(/_/g, " ")})));
  const opSel = h("select", {id: `${id}-o`, "aria-label": "Comparison"});
  const value = h("input", {id: `${id}-v`, "aria-label": "Value", placeholder: "value (in: a, b, c)"});
  const fitOps = () => {
    const spec = catalogue.find((f) => f.name === fieldSel.value) || {ops: OPS, choices: []};
    const was = opSel.value;
    replace(opSel, spec.ops.map((o) => h("option", {value: o, text: o})));
    if (spec.ops.includes(was)) opSel.value = was;
    value.placeholder = spec.choices.length ? `one of: ${spec.choices.join(", ")}` : spec.kind === "bool"
      ? "true or false" : "value (in: a, b, c)";
  };
  fitOps();
  fieldSel.addEventListener("change", fitOps);
  const negate = h("input", {id: `${id}-n`, type: "checkbox"});
  const row = h("div", {class: "condition", role: "group", "aria-label": "Condition"},
    fieldSel, opSel, value, h("span", {class: "check"}, negate, h("label", {for: `${id}-n`, text: "not"})),
    button("Remove", () => { row.remove(); onChange(); }));
  for (const el of [fieldSel, opSel, value, negate]) el.addEventListener("input", onChange);
  row.criterion = () => {
    if (!value.value.trim()) return null;
    const c = {field: fieldSel.value, op: opSel.value, value: typed(fieldSel.value, opSel.value, value.value)};
    return negate.checked ? {not: c} : c;
  };
  row.set = (f, o, v) => { fieldSel.value = f; opSel.value = o; value.value = v; };
  return row;
}

export function builder(onChange) {
  const id = uid("match");
  const match = h("select", {id}, h("option", {value: "all", text: "all of"}), h("option", {value: "any", text: "any of"}));
  const rows = h("div", {class: "conditions"});
  const add = () => { const r = conditionRow(onChange); rows.append(r); return r; };
  match.addEventListener("input", onChange);
  const el = h("fieldset", {class: "builder"}, h("legend", {text: "Members who match"}),
    h("div", {class: "field"}, h("label", {for: id, text: "Match"}), match), rows,
    button("Add a condition", () => { add().querySelector("select").focus(); }));
  el.criteria = () => {
    const list = [...rows.children].map((r) => r.criterion()).filter(Boolean);
    return {[match.value]: list};
  };
  el.add = add;
  add();
  return el;
}

async function segmentsScreen() {
  await loadCatalogue();
  const problems = h("div", {"aria-live": "polite"});
  const preview = h("div", {class: "preview", "aria-live": "polite"}, h("p", {text: "Add a condition to see how many members match."}));
  let timer = null;
  let asked = 0;
  const refreshPreview = () => {
    clearTimeout(timer);
    timer = setTimeout(async () => {
      const criteria = build.criteria();
      const mine = ++asked;
      try {
        const p = await api.post("/admin/segments/preview", {criteria});
        if (mine !== asked) return;
        replace(preview, h("p", {class: "count"}, h("strong", {text: num(p.count)}), " members match now"),
          (p.sample || []).length ? h("p", {}, "For example: ", (p.sample || []).map((m) => m.name || m.id).join(", ")) : null);
      } catch (error) {
        if (mine === asked) showError(preview, error, "Segments");
      }
    }, 350);
  };
  const build = builder(refreshPreview);
  const listing = pagedTable({caption: "Segments", what: "Segments", columns: [
    ["Name", (s) => s.name], ["Criteria", (s) => json(s.criteria)],
    ["", (s) => h("div", {class: "row-actions"},
      button("Members", () => { window.location.hash = `#/segments/${encodeURIComponent(s.id)}`; }),
      dangerButton("Delete", {title: "Delete this segment?",
        message: `“${s.name}” goes; campaigns and rules that use it may stop working.`, confirm: "Delete segment"},
      async () => { await api.del(`/admin/segments/${encodeURIComponent(s.id)}`); say("Segment deleted"); listing.refresh(); },
      problems))]],
  load: (cursor) => api.get("/admin/segments", {cursor}), empty: "No segments yet."});
  const save = form({label: "New segment", submitText: "Save segment", fields: [
    field({label: "Name", name: "name", required: true, maxlength: 120})], extra: h("div", {}, build, preview),
  submit: async (values, formEl, result) => {
    const s = await api.post("/admin/segments", {name: values.name, criteria: build.criteria()});
    replace(result, h("p", {class: "ok", text: `Saved the segment “${s.name}”.`}));
    say("Segment saved");
    listing.reload();
  }});
  return screen("Segments", problems, listing, save);
}

export function segmentMembers(id) {
  return pagedTable({caption: "Members in the segment now", what: "Segments", columns: [
    ["Name", (m) => h("a", {href: `#/members/${encodeURIComponent(m.id)}`, text: m.name || m.id})],
    ["Email", (m) => m.email], ["Tier", (m) => m.tier]],
  load: (cursor) => api.get(`/admin/segments/${encodeURIComponent(id)}/members`, {cursor})});
}

export function withMembers(fn) {
  return ([id]) => (id ? screen("Segment members", h("p", {}, h("a", {href: "#/segments", text: "← Segments"})),
    segmentMembers(id)) : fn());
}

export default withMembers(segmentsScreen);
