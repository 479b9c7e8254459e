// Members: search; one member's card, balance, tier, consents, timeline across channels, referrals and
// influence; a manual points adjustment with its reason (asked first, sent once with an Idempotency-Key).

import * as api from "../api.js";
import {h, isoFromLocal, num, replace, when} from "../dom.js";
import {confirmAction, dangerButton, facts, field, form, pagedTable, problemBox, say, screen, showError, table}
  from "../ui.js";

function memberLink(member) {
  return h("a", {href: `#/members/${encodeURIComponent(member.id)}`, text: member.name || member.email || member.id});
}

function list() {
  let query = "";
  const results = pagedTable({caption: "Members", what: "Members", columns: [
    ["Name", memberLink], ["Email", (m) => m.email], ["Card", (m) => m.card && m.card.number],
    ["Tier", (m) => m.tier], ["Balance", (m) => num(m.balance)], ["Status", (m) => m.status]],
  load: (cursor) => api.get("/admin/members", {q: query || undefined, cursor, limit: 25}),
  empty: "No member matches."});
  const search = form({label: "Find a member", submitText: "Search", fields: [
    field({label: "Email, name, phone or card number", name: "q", type: "search", maxlength: 120})],
  submit: async (values) => { query = values.q.trim(); await results.reload(); }});
  search.classList.add("inline");
  const influencers = pagedTable({caption: "Influencers: members ranked by the value of the friends they brought",
    what: "Influencers", columns: [["Member", (i) => (i.member ? memberLink(i.member) : "—")],
      ["Referral value", (i) => i.referral_value], ["Own value", (i) => i.own_value],
      ["Qualified referrals", (i) => num(i.qualified_referrals)], ["Influence", (i) => i.influence]],
    load: (cursor) => api.get("/admin/influencers", {cursor, limit: 10}), empty: "No referrals yet."});
  return screen("Members", search, results, h("h2", {text: "Influencers"}), influencers);
}

function consents(member) {
  const rows = Object.entries(member.consents || {});
  if (!rows.length) return h("p", {class: "empty", text: "No consent given."});
  return table("Consents", [["Purpose", ([k]) => k], ["Granted", ([, c]) => (c && c.granted ? "yes" : "no")],
    ["Since", ([, c]) => when(c && c.at)]], rows);
}

function preferences(member) {
  const rows = Object.entries(member.preferences || {});
  return rows.length ? rows.map(([k, v]) => `${k}: ${v ? "yes" : "no"}`).join(", ") : "—";
}

async function influence(id) {
  const slot = h("div", {class: "influence"});
  try {
    const i = await api.get(`/admin/members/${encodeURIComponent(id)}/influence`);
    replace(slot, facts([["Referrals", num(i.referrals)], ["Qualified referrals", num(i.qualified_referrals)],
      ["Friends' spend", i.referred_spend], ["Referral value", i.referral_value], ["Own value", i.own_value],
      ["Influence", i.influence]]));
  } catch (error) {
    showError(slot, error, "Referrals and influence");
  }
  return slot;
}

function adjustment(member, balanceEl, timeline) {
  let key = null; // one key per set of values: a retry (after signing in again, say) is the same request
  let keyFor = "";
  return form({label: "Adjust points by hand", submitText: "Adjust points", fields: [
    field({label: "Points (negative to take points away)", name: "points", type: "number", required: true,
      step: 1, min: -1000000, max: 1000000}),
    field({label: "Reason (kept in the ledger and the audit log)", name: "reason", required: true,
      minlength: 3, maxlength: 200}),
  ], submit: async (values, formEl, result) => {
    const points = Number.parseInt(values.points, 10);
    const verb = points < 0 ? `take ${num(-points)} points from` : `give ${num(points)} points to`;
    const ok = await confirmAction({title: "Adjust points?", danger: points < 0,
      message: `This will ${verb} ${member.name}. A ledger entry is never deleted: undoing it takes another adjustment.`,
      confirm: "Adjust points"});
    if (!ok) return;
    const signature = `${points}|${values.reason}`;
    if (signature !== keyFor) { key = api.newKey(); keyFor = signature; }
    const entry = await api.post(`/admin/members/${encodeURIComponent(member.id)}/adjustments`,
      {points, reason: values.reason}, {idempotencyKey: key});
    key = null; keyFor = "";
    balanceEl.textContent = num(entry.balance_after);
    replace(result, h("p", {class: "ok", text: `Done: ${entry.delta > 0 ? "+" : ""}${num(entry.delta)} points; balance ${num(entry.balance_after)}.`}));
    say("Points adjusted");
    formEl.reset();
    timeline.reload();
  }});
}

function cardActions(member, problems, shown) {
  if (api.role() !== "admin") return null;
  const path = `/admin/members/${encodeURIComponent(member.id)}/card`;
  return h("div", {class: "actions"},
    dangerButton("Block card", {title: "Block this card?", confirm: "Block card",
      message: `${member.card && member.card.number}: its number, QR codes and wallet passes stop working at every till at once.`},
    async () => {
      const r = await api.post(`${path}/block`);
      shown.status.textContent = r.card.status;
      replace(problems, h("p", {class: "ok", text: r.changed ? "The card is blocked." : "The card was already blocked."}));
    }, problems),
    dangerButton("Replace card", {title: "Replace this card?", confirm: "Replace card",
      message: "The old card is blocked everywhere and a new number is issued; the member's wallet passes update."},
    async () => {
      const r = await api.post(`${path}/replace`);
      shown.number.textContent = r.card.number;
      shown.status.textContent = r.card.status;
      replace(problems, h("p", {class: "ok", text: `New card ${r.card.number}; ${r.replaced.number} is blocked.`}));
    }, problems));
}

function tierByHand(member) {
  return form({label: "A tier by hand (a status match)", submitText: "Set tier", fields: [
    field({label: "Tier code", name: "code", required: true, maxlength: 32}),
    field({label: "Until (UTC)", name: "until", type: "datetime-local", required: true}),
    field({label: "Reason", name: "reason", required: true, minlength: 3, maxlength: 200}),
  ], submit: async (values, formEl, result) => {
    const ok = await confirmAction({title: "Set this tier?", danger: false, confirm: "Set tier",
      message: `${member.name} will be at least ${values.code} until ${values.until}; the member sees it.`});
    if (!ok) return;
    try {
      await api.post(`/admin/members/${encodeURIComponent(member.id)}/tier`,
        {code: values.code, until: isoFromLocal(values.until), reason: values.reason});
      replace(result, h("p", {class: "ok", text: `${member.name} is now at least ${values.code}.`}));
    } catch (error) {
      showError(result, error, "Tiers by hand");
    }
  }});
}

async function detail(id) {
  let data;
  try {
    data = await api.get(`/admin/members/${encodeURIComponent(id)}`);
  } catch (error) {
    return screen("Member", h("p", {}, h("a", {href: "#/members", text: "← All members"})), problemBox(error));
  }
  const m = data.member;
  const balance = h("span", {class: "balance", text: num(m.balance)});
  const cardProblems = h("div", {"aria-live": "polite"});
  const shown = {number: h("span", {text: m.card ? m.card.number : "—"}), status: h("span", {text: m.card ? m.card.status : "—"})};
  const timeline = pagedTable({caption: "Timeline, newest first", what: "The timeline", columns: [
    ["When", (i) => when(i.occurred_at)], ["What", (i) => i.summary || i.kind], ["Channel", (i) => i.channel],
    ["Store", (i) => i.store && i.store.name], ["Points", (i) => (i.points === null || i.points === undefined ? "" : num(i.points))]],
  load: (cursor) => api.get(`/admin/members/${encodeURIComponent(id)}/activity`, {cursor, limit: 20}),
  empty: "Nothing has happened yet."});
  return screen(`Member: ${m.name}`,
    h("p", {class: "actions"}, h("a", {href: "#/members", text: "← All members"}),
      h("a", {href: `#/rules/simulate/${encodeURIComponent(m.id)}`, text: "What would a purchase earn? (simulator)"})),
    h("div", {class: "columns"},
      h("section", {class: "panel", "aria-label": "Card"},
        h("h2", {text: "Card"}),
        facts([["Name", m.name], ["Email", m.email], ["Phone", m.phone], ["Card number", shown.number],
          ["Card status", shown.status], ["Tier", m.tier], ["Balance", balance],
          ["Member since", when(m.created_at)], ["Status", m.status], ["Referral code", m.referral_code],
          ["Channels", preferences(m)]]), cardActions(m, cardProblems, shown), cardProblems),
      h("section", {class: "panel", "aria-label": "Consents"}, h("h2", {text: "Consents"}), consents(m)),
      h("section", {class: "panel", "aria-label": "Referrals and influence"},
        h("h2", {text: "Referrals and influence"}), await influence(id))),
    h("div", {class: "columns"}, adjustment(m, balance, timeline), tierByHand(m)),
    h("section", {"aria-label": "Timeline"}, h("h2", {text: "Timeline across channels"}), timeline));
}

export default function members([id]) {
  return id ? detail(id) : list();
}
