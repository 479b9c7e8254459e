// Contests (API.md "Social profile and contests"): list, create, draw (asked first: once only), the commitment.

import * as api from "../api.js";
import {h, isoFromLocal, num, replace, when} from "../dom.js";
import {button, confirmAction, field, form, optionalInt, pagedTable, problemBox, say, screen} from "../ui.js";

export default function contests() {
  const problems = h("div", {"aria-live": "polite"});
  const listing = pagedTable({caption: "Contests", what: "Contests", columns: [
    ["Title", (c) => c.title], ["Opens", (c) => when(c.opens_at)], ["Closes", (c) => when(c.closes_at)],
    ["Draw", (c) => when(c.draw_at)], ["Winners", (c) => num(c.winners)], ["Entries", (c) => num(c.entries ?? c.entry_count)],
    ["Commitment (SHA-256)", (c) => h("code", {class: "hash", text: c.commitment || "—"})],
    ["", (c) => (c.seed ? "drawn" : button("Draw now", async () => {
      const ok = await confirmAction({title: "Draw the winners now?", confirm: "Draw winners",
        message: `The draw of “${c.title}” happens once and cannot be redone; the seed is then published.`});
      if (!ok) return;
      try {
        await api.post(`/admin/contests/${encodeURIComponent(c.id)}/draw`);
        say("Winners drawn");
        listing.refresh();
      } catch (error) {
        replace(problems, problemBox(error));
      }
    }, "danger"))]],
  load: (cursor) => api.get("/admin/contests", {cursor}), empty: "No contests yet."});
  const create = form({label: "New contest", submitText: "Create contest", fields: [
    field({label: "Title", name: "title", required: true, maxlength: 120}),
    field({label: "Terms", name: "terms", type: "textarea", rows: 3, required: true}),
    field({label: "Opens at (UTC)", name: "opens_at", type: "datetime-local", required: true}),
    field({label: "Closes at (UTC)", name: "closes_at", type: "datetime-local", required: true}),
    field({label: "Draw at (UTC)", name: "draw_at", type: "datetime-local", required: true}),
    field({label: "Winners", name: "winners", type: "number", min: 1, value: 1, required: true}),
    field({label: "Prize offer id (optional)", name: "prize_offer_id"}),
    field({label: "An entry per purchase of at least (optional amount)", name: "min_amount", inputmode: "decimal"}),
  ], submit: async (values, formEl, result) => {
    const body = {title: values.title, terms: values.terms, opens_at: isoFromLocal(values.opens_at),
      closes_at: isoFromLocal(values.closes_at), draw_at: isoFromLocal(values.draw_at),
      winners: optionalInt(values.winners)};
    if (values.prize_offer_id) body.prize_offer_id = values.prize_offer_id;
    if (values.min_amount) body.entries_per_purchase = {min_amount: values.min_amount};
    const c = await api.post("/admin/contests", body);
    replace(result, h("p", {class: "ok", text: `Created “${c.title}”; commitment ${c.commitment || "—"}.`}));
    say("Contest created");
    listing.reload();
  }});
  return screen("Contests", problems, listing, create);
}
