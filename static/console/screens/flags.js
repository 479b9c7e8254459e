// Flags to review (API.md "Sessions, accounts and limits": GET /admin/flags): impossible travel, a QR code at
// two stores within a minute, bursts of enrolments or claims. Shown as the API gives them.

import * as api from "../api.js";
import {h, json, when} from "../dom.js";
import {pagedTable, screen} from "../ui.js";

function memberCell(f) {
  const id = f.member_id || (f.member && f.member.id);
  return id ? h("a", {href: `#/members/${encodeURIComponent(id)}`, text: (f.member && f.member.name) || id}) : "—";
}

export default function flags() {
  return screen("Flags to review",
    h("p", {text: "What the club's defences noticed. Open the member to see their timeline."}),
    pagedTable({caption: "Flags, newest first", what: "Flags", columns: [
      ["When", (f) => when(f.at || f.flagged_at || f.created_at || f.occurred_at)],
      ["Kind", (f) => f.kind || f.type || f.reason], ["Member", memberCell],
      ["Store", (f) => f.store_id || (f.store && f.store.name)],
      ["Details", (f) => json(f.details || f.data || null)]],
    load: (cursor) => api.get("/admin/flags", {cursor}), empty: "Nothing to review."}));
}
