// Stores and products: lists, create, archive (asked first), and the CSV import with its per-row report
// (POST /admin/products/import, multipart; a dry run checks without saving).

import * as api from "../api.js";
import {h, num, replace} from "../dom.js";
import {dangerButton, facts, field, form, pagedTable, say, screen, table} from "../ui.js";

function stores(problems) {
  const listing = pagedTable({caption: "Stores", what: "Stores", columns: [
    ["Code", (s) => s.code], ["Name", (s) => s.name], ["Address", (s) => s.address], ["Time zone", (s) => s.timezone],
    ["Radius (m)", (s) => num(s.radius_m)], ["Active", (s) => (s.active ? "yes" : "no")],
    ["", (s) => dangerButton("Archive", {title: "Archive this store?",
      message: `${s.name} (${s.code}) leaves every list: no more check-ins, scans or purchases there. Its history stays.`,
      confirm: "Archive store"}, async () => {
      await api.del(`/admin/stores/${encodeURIComponent(s.id)}`); say("Store archived"); listing.refresh();
    }, problems)]],
  load: (cursor) => api.get("/admin/stores", {cursor, limit: 25}), empty: "No stores yet."});
  const create = form({label: "New store", submitText: "Create store", fields: [
    field({label: "Code", name: "code", required: true, maxlength: 32}),
    field({label: "Name", name: "name", required: true, maxlength: 120}),
    field({label: "Address", name: "address", maxlength: 240}),
    field({label: "Latitude", name: "lat", type: "number", step: "any", min: -90, max: 90, required: true}),
    field({label: "Longitude", name: "lon", type: "number", step: "any", min: -180, max: 180, required: true}),
    field({label: "Check-in radius (m)", name: "radius_m", type: "number", min: 1, value: 150}),
    field({label: "Time zone", name: "timezone", value: "Asia/Jerusalem", required: true}),
  ], submit: async (values, formEl, result) => {
    const s = await api.post("/admin/stores", {code: values.code, name: values.name, address: values.address,
      lat: Number(values.lat), lon: Number(values.lon), radius_m: Number.parseInt(values.radius_m || "150", 10),
      timezone: values.timezone});
    replace(result, h("p", {class: "ok", text: `Opened ${s.name} (${s.code}).`}));
    say("Store created");
    formEl.reset();
    listing.reload();
  }});
  return h("section", {"aria-labelledby": "stores-h"}, h("h2", {id: "stores-h", text: "Stores"}), listing, create);
}

function products(problems) {
  let query = "";
  const listing = pagedTable({caption: "Products", what: "Products", columns: [
    ["SKU", (p) => p.sku], ["Barcode", (p) => p.barcode], ["Name", (p) => p.name], ["Category", (p) => p.category],
    ["Price", (p) => (p.price ? `${p.price} ${p.currency || ""}` : "—")], ["Active", (p) => (p.active ? "yes" : "no")],
    ["", (p) => dangerButton("Archive", {title: "Archive this product?",
      message: `${p.name} (${p.sku}) can no longer be scanned or listed; its SKU and barcode stay reserved.`,
      confirm: "Archive product"}, async () => {
      await api.del(`/admin/products/${encodeURIComponent(p.id)}`); say("Product archived"); listing.refresh();
    }, problems)]],
  load: (cursor) => api.get("/admin/products", {q: query || undefined, cursor, limit: 25}), empty: "No products."});
  const search = form({label: "Find a product", submitText: "Search", fields: [
    field({label: "Name, SKU, description or barcode", name: "q", type: "search", maxlength: 200})],
  submit: async (values) => { query = values.q.trim(); await listing.reload(); }});
  search.classList.add("inline");
  const create = form({label: "New product", submitText: "Create product", fields: [
    field({label: "SKU", name: "sku", required: true, maxlength: 64}),
    field({label: "Barcode (EAN-13, EAN-8 or UPC-A)", name: "barcode", required: true, inputmode: "numeric"}),
    field({label: "Name", name: "name", required: true, maxlength: 200}),
    field({label: "Category", name: "category", maxlength: 64}),
    field({label: "Price", name: "price", inputmode: "decimal", pattern: "[0-9]+(\\.[0-9]{1,2})?"}),
  ], submit: async (values, formEl, result) => {
    const p = await api.post("/admin/products", {sku: values.sku, barcode: values.barcode, name: values.name,
      category: values.category, price: values.price || null});
    replace(result, h("p", {class: "ok", text: `Added ${p.name} (${p.sku}).`}));
    say("Product created");
    formEl.reset();
    listing.reload();
  }});
  return h("section", {"aria-labelledby": "products-h"}, h("h2", {id: "products-h", text: "Products"}), search,
    listing, create, importForm(listing));
}

export function reportView(r) {
  const problems = (rows) => rows.map((p) => ({line: p.line, sku: p.sku,
    what: Object.entries(p.errors || {}).map(([k, v]) => `${k}: ${[].concat(v).join(" ")}`).join("; ")}));
  return h("div", {class: "import-report"},
    h("h4", {text: r.dry_run ? "Checked (dry run): nothing was saved" : "Imported"}),
    facts([["Rows", num(r.rows)], ["Created", num(r.created)], ["Updated", num(r.updated)],
      ["Unchanged", num(r.unchanged)], ["Refused", num(r.refused.length)], ["Warnings", num(r.warnings.length)]]),
    r.refused.length ? table("Refused rows (not saved)", [["Line", (p) => p.line], ["SKU", (p) => p.sku],
      ["Why", (p) => p.what]], problems(r.refused)) : h("p", {class: "ok", text: "Every row was accepted."}),
    r.warnings.length ? table("Warnings (saved, something left out)", [["Line", (p) => p.line], ["SKU", (p) => p.sku],
      ["What", (p) => p.what]], problems(r.warnings)) : null);
}

function importForm(listing) {
  return form({label: "Import products from a CSV file", submitText: "Import", fields: [
    field({label: "CSV file (UTF-8; columns sku, barcode, name, and optionally description, category, price, "
      + "currency, image_url, complementary, active)", name: "file", type: "file", accept: ".csv,text/csv", required: true}),
    field({label: "Dry run: check and report, save nothing", name: "dry_run", type: "checkbox"}),
  ], submit: async (values, formEl, result) => {
    const file = formEl.elements.file.files[0];
    const body = new FormData();
    body.append("file", file, file.name);
    const r = await api.request("POST", "/admin/products/import", {body,
      query: values.dry_run ? {dry_run: "true"} : undefined});
    replace(result, reportView(r));
    say(`Import: ${r.created} created, ${r.refused.length} refused`);
    if (!r.dry_run) listing.reload();
  }});
}

export default function catalogue() {
  const problems = h("div", {"aria-live": "polite"});
  return screen("Stores and products", problems, stores(problems), products(problems));
}
