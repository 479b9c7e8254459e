// Webhooks (admins): create (the signing secret is shown once, here, and never again), pause/resume, rotate
// the secret and delete (both asked first), deliveries and retrying one.

import * as api from "../api.js";
import {h, num, replace, when} from "../dom.js";
import {button, dangerButton, field, form, pagedTable, problemBox, say, screen} from "../ui.js";

function secretOnce(title, secret) {
  const value = h("code", {class: "secret", text: secret});
  const box = h("div", {class: "secret-once", role: "alert"},
    h("strong", {text: title}),
    h("p", {text: "Copy this signing secret now: it is shown only this once. Receivers verify each delivery's webhook-signature with it."}),
    value,
    h("div", {class: "actions"},
      button("Copy", async () => {
        try { await navigator.clipboard.writeText(secret); say("Secret copied"); } catch (err) { say("Select the secret and copy it"); }
      }),
      button("I have copied it: hide it", () => { box.remove(); say("Secret hidden"); })));
  return box;
}

function deliveries(hook) {
  const slot = h("div", {});
  const listing = pagedTable({caption: `Deliveries to ${hook.url}`, what: "Deliveries", columns: [
    ["Event", (d) => d.type], ["Status", (d) => d.status], ["Attempts", (d) => num(d.attempts)],
    ["Last answer", (d) => d.last_status_code ?? d.last_error ?? "—"], ["Next attempt", (d) => when(d.next_attempt_at)],
    ["", (d) => button("Retry now", async () => {
      try {
        await api.post(`/admin/webhooks/${encodeURIComponent(hook.id)}/deliveries/${encodeURIComponent(d.id)}/retry`);
        say("Delivery queued again");
        listing.refresh();
      } catch (error) {
        replace(slot, problemBox(error));
      }
    })]],
  load: (cursor) => api.get(`/admin/webhooks/${encodeURIComponent(hook.id)}/deliveries`, {cursor, limit: 25}),
  empty: "No deliveries yet."});
  return h("div", {}, slot, listing);
}

export default function webhooks() {
  const problems = h("div", {"aria-live": "polite"});
  const shown = h("div", {class: "deliveries"});
  const listing = pagedTable({caption: "Webhooks", what: "Webhooks", columns: [
    ["URL", (w) => w.url], ["Events", (w) => (w.events || []).join(", ")], ["Status", (w) => w.status],
    ["Description", (w) => w.description],
    ["", (w) => h("div", {class: "row-actions"},
      button("Deliveries", () => { replace(shown, h("h2", {text: "Deliveries"}), deliveries(w)); shown.querySelector("h2").scrollIntoView(); }),
      button(w.status === "active" ? "Pause" : "Resume", async () => {
        try {
          await api.patch(`/admin/webhooks/${encodeURIComponent(w.id)}`, {status: w.status === "active" ? "paused" : "active"});
          listing.refresh();
        } catch (error) { replace(problems, problemBox(error)); }
      }),
      dangerButton("Rotate secret", {title: "Rotate the signing secret?",
        message: "A new secret is made and shown once. For 24 hours deliveries carry signatures by both; then only the new one.",
        confirm: "Rotate secret"}, async () => {
        const r = await api.post(`/admin/webhooks/${encodeURIComponent(w.id)}/rotate-secret`);
        replace(problems, secretOnce("New secret", r.secret));
      }, problems),
      dangerButton("Delete", {title: "Delete this webhook?",
        message: `${w.url} will receive nothing more; deliveries still pending are dropped.`, confirm: "Delete webhook"},
      async () => { await api.del(`/admin/webhooks/${encodeURIComponent(w.id)}`); say("Webhook deleted"); listing.refresh(); },
      problems))]],
  load: (cursor) => api.get("/admin/webhooks", {cursor, limit: 25}), empty: "No webhooks yet."});
  const create = form({label: "New webhook", submitText: "Create webhook", fields: [
    field({label: "URL (https)", name: "url", type: "url", required: true, maxlength: 2048}),
    field({label: "Event types (comma-separated, or * for every event)", name: "events", value: "*", required: true}),
    field({label: "Description", name: "description", maxlength: 240}),
  ], submit: async (values, formEl, result) => {
    const events = values.events.split(",").map((s) => s.trim()).filter(Boolean);
    const w = await api.post("/admin/webhooks", {url: values.url, events, description: values.description});
    replace(result, secretOnce(`Created the webhook to ${w.url}`, w.secret));
    formEl.reset();
    listing.reload();
  }});
  return screen("Webhooks", h("p", {text: "Admins only. Every delivery is signed (Standard Webhooks)."}), problems,
    listing, create, shown);
}
