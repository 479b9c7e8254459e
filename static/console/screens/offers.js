// Offers: the coupon templates (/admin/offers): list, create, archive (asked first), counts.

import * as api from "../api.js";
import {h, isoFromLocal, num, replace, when} from "../dom.js";
import {dangerButton, field, form, optionalInt, pagedTable, say, screen} from "../ui.js";

export function benefitText(b) {
  if (!b || typeof b !== "object") return "—";
  if (b.kind === "percent_off") return `${b.value}% off`;
  if (b.kind === "amount_off") return `${b.value} ${b.currency || ""} off`.replace("  ", " ");
  if (b.kind === "free_item") return `free ${b.sku}`;
  return JSON.stringify(b);
}

function benefitFrom(values) {
  if (values.kind === "percent_off") return {kind: "percent_off", value: values.value};
  if (values.kind === "amount_off") return {kind: "amount_off", value: values.value, currency: values.currency || undefined};
  return {kind: "free_item", sku: values.value};
}

export default function offers() {
  const problems = h("div", {"aria-live": "polite"});
  const listing = pagedTable({caption: "Offers", what: "Offers", columns: [
    ["Title", (o) => o.title], ["Benefit", (o) => benefitText(o.benefit)],
    ["Points cost", (o) => (o.points_cost ? num(o.points_cost) : "free")], ["Issued", (o) => num(o.issued)],
    ["Remaining", (o) => (o.remaining === null ? "no limit" : num(o.remaining))],
    ["Valid until", (o) => when(o.valid_until)], ["Active", (o) => (o.active ? "yes" : "no")],
    ["", (o) => dangerButton("Archive", {title: "Archive this offer?",
      message: `“${o.title}” leaves the app and can no longer be claimed. Coupons already issued stay valid.`,
      confirm: "Archive offer"}, async () => {
      await api.del(`/admin/offers/${encodeURIComponent(o.id)}`);
      say("Offer archived");
      listing.refresh();
    }, problems)]],
  load: (cursor) => api.get("/admin/offers", {cursor, limit: 25}), empty: "No offers yet."});

  const create = form({label: "New offer", submitText: "Create offer", fields: [
    field({label: "Title", name: "title", required: true, maxlength: 120}),
    field({label: "Terms the shopper sees", name: "terms", type: "textarea", rows: 2, maxlength: 4000}),
    field({label: "Benefit", name: "kind", options: [["percent_off", "percent off"], ["amount_off", "amount off"],
      ["free_item", "a free item (SKU)"]]}),
    field({label: "Value (percent, amount such as 5.00, or the free item's SKU)", name: "value", required: true}),
    field({label: "Currency (amount off; default the club's)", name: "currency", maxlength: 3, pattern: "[A-Z]{3}"}),
    field({label: "Points cost (empty: free to claim)", name: "points_cost", type: "number", min: 1}),
    field({label: "Valid from (UTC)", name: "valid_from", type: "datetime-local"}),
    field({label: "Valid until (UTC)", name: "valid_until", type: "datetime-local"}),
    field({label: "Per member limit", name: "per_member_limit", type: "number", min: 1, max: 1000}),
    field({label: "Total limit", name: "total_limit", type: "number", min: 1}),
  ], submit: async (values, formEl, result) => {
    const body = {title: values.title, terms: values.terms, benefit: benefitFrom(values),
      points_cost: optionalInt(values.points_cost), valid_from: isoFromLocal(values.valid_from),
      valid_until: isoFromLocal(values.valid_until), per_member_limit: optionalInt(values.per_member_limit),
      total_limit: optionalInt(values.total_limit)};
    const offer = await api.post("/admin/offers", body);
    replace(result, h("p", {class: "ok", text: `Created “${offer.title}” (${benefitText(offer.benefit)}).`}));
    say("Offer created");
    formEl.reset();
    listing.reload();
  }});
  return screen("Offers", problems, listing, create);
}
