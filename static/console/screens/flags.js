// Flags to review (API.md "Sessions, accounts and limits": GET /admin/flags): impossible travel, a QR code at
// two stores within a minute, bursts of enrolments or claims; mark one reviewed (or open it again).

import * as api from "../api.js";
import {h, json, num, replace, when} from "../dom.js";
import {button, field, form, pagedTable, problemBox, say, screen} from "../ui.js";

function memberCell(f) {
  const id = f.member_id || (f.member && f.member.id);
  return id ? h("a", {href: `#/members/${encodeURIComponent(id)}`, text: (f.member && f.member.name) || id})
    : (f.subject || "—");
}

export default function flags() {
  const problems = h("div", {"aria-live": "polite"});
  let status = "open";
  const listing = pagedTable({caption: "Flags, most recently seen first", what: "Flags", columns: [
    ["Last seen", (f) => when(f.last_seen_at || f.at || f.created_at)], ["Kind", (f) => (f.kind || "").replace(/_/g, " ")],
    ["Who", memberCell], ["Store", (f) => f.store_id], ["Times", (f) => num(f.count)],
    ["Details", (f) => json(f.details || null)], ["Status", (f) => f.status],
    ["", (f) => (f.id && f.status ? button(f.status === "open" ? "Mark reviewed" : "Open again", async () => {
      try {
        await api.post(`/admin/flags/${encodeURIComponent(f.id)}/review`,
          {status: f.status === "open" ? "reviewed" : "open"});
        replace(problems);
        say(f.status === "open" ? "Flag marked reviewed" : "Flag opened again");
        listing.refresh();
      } catch (error) {
        replace(problems, problemBox(error));
      }
    }) : "")]],
  load: (cursor) => api.get("/admin/flags", {cursor, status: status || undefined, limit: 25}),
  empty: "Nothing to review."});
  const filter = form({label: "Show", submitText: "Show", fields: [
    field({label: "Status", name: "status", value: "open", options: [["open"], ["reviewed"], ["", "all"]]})],
  submit: async (values) => { status = values.status; await listing.reload(); }});
  filter.classList.add("inline");
  return screen("Flags to review",
    h("p", {text: "What the club's defences noticed. Open the member to see their timeline."}),
    filter, problems, listing);
}
