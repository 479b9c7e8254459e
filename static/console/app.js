// The console's start: sign-in, the hash router (#/today, #/members/<id>, ...), and signing in again when a
// session ends mid-form (the form underneath stays as it was; the request that needed it is sent again).

import * as api from "./api.js";
import {h, replace, uid} from "./dom.js";
import {problemBox} from "./ui.js";
import campaigns from "./screens/campaigns.js";
import catalogue from "./screens/catalogue.js";
import contests from "./screens/contests.js";
import flags from "./screens/flags.js";
import members from "./screens/members.js";
import offers from "./screens/offers.js";
import rules from "./screens/rules.js";
import segments from "./screens/segments.js";
import tiers from "./screens/tiers.js";
import today from "./screens/today.js";
import webhooks from "./screens/webhooks.js";

const SCREENS = {today, members, offers, rules, tiers, segments, campaigns, contests, catalogue, webhooks, flags};
const main = document.getElementById("main");
const nav = document.getElementById("nav");
const who = document.getElementById("who");
const signOutButton = document.getElementById("sign-out");

function signInForm({onDone, title = "Sign in", note}) {
  const emailId = uid("email");
  const passwordId = uid("password");
  const result = h("div", {class: "result", "aria-live": "polite"});
  const button = h("button", {type: "submit", class: "primary", text: "Sign in"});
  const emailInput = h("input", {id: emailId, name: "email", type: "email", autocomplete: "username", required: true,
    value: api.email() || ""});
  const form = h("form", {class: "panel signin", "aria-label": title},
    h("h2", {text: title}), note ? h("p", {text: note}) : null,
    h("div", {class: "field"}, h("label", {for: emailId, text: "Email"}), emailInput),
    h("div", {class: "field"}, h("label", {for: passwordId, text: "Password"}),
      h("input", {id: passwordId, name: "password", type: "password", autocomplete: "current-password",
        required: true})),
    h("div", {class: "actions"}, button), result);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    button.disabled = true;
    try {
      await api.signIn(form.elements.email.value.trim(), form.elements.password.value);
      form.elements.password.value = "";
      onDone();
    } catch (error) {
      replace(result, problemBox(error));
    } finally {
      button.disabled = false;
    }
  });
  return form;
}

function showSignIn() {
  nav.hidden = true;
  replace(main, h("section", {class: "screen narrow", "aria-label": "Sign in"},
    h("h1", {text: "Club console"}),
    h("p", {text: "For the club's marketers and admins. Sign in with your staff account."}),
    signInForm({onDone: route})));
  main.querySelector("input").focus();
}

// When a session ends mid-task: a modal sign-in over the page; the page and its forms stay untouched.
let reauthPending = null;
api.onReauthenticate(() => {
  if (reauthPending) return reauthPending;
  reauthPending = new Promise((resolve, reject) => {
    const dialog = h("dialog", {class: "reauth", "aria-label": "Sign in again"});
    const cancel = h("button", {type: "button", class: "secondary", text: "Cancel"});
    let done = false;
    dialog.append(signInForm({title: "Your session has ended",
      note: "Sign in again to carry on: what you typed is kept and will be sent once you are signed in.",
      onDone: () => { done = true; dialog.close(); }}), h("div", {class: "actions"}, cancel));
    cancel.addEventListener("click", () => dialog.close());
    dialog.addEventListener("close", () => {
      dialog.remove();
      reauthPending = null;
      if (done) resolve();
      else reject(new api.Problem(401, {code: "unauthorized", detail: "Not signed in; nothing was sent."}));
    });
    document.body.append(dialog);
    dialog.showModal();
  });
  return reauthPending;
});

api.onChange((session) => {
  who.textContent = session ? `${session.email} (${session.role})` : "";
  signOutButton.hidden = !session;
});

signOutButton.addEventListener("click", () => {
  api.signOut();
  window.location.hash = "#/today";
  showSignIn();
});

let rendering = 0;
async function route() {
  if (!api.signedIn()) { showSignIn(); return; }
  nav.hidden = false;
  const [name, ...rest] = (window.location.hash.replace(/^#\/?/, "") || "today").split("/").map(decodeURIComponent);
  const screen = SCREENS[name] || today;
  for (const link of nav.querySelectorAll("a")) {
    if (link.getAttribute("href") === `#/${screen === today && !SCREENS[name] ? "today" : name}`) {
      link.setAttribute("aria-current", "page");
    } else {
      link.removeAttribute("aria-current");
    }
  }
  const mine = ++rendering;
  try {
    const el = await screen(rest);
    if (mine !== rendering) return; // another route was asked for meanwhile
    replace(main, el);
  } catch (error) {
    if (mine === rendering) replace(main, problemBox(error));
  }
  const heading = main.querySelector("h1");
  document.title = `${heading ? heading.textContent : "Console"} · Club console`;
  if (heading) heading.focus({preventScroll: false});
}

// The skip link moves the focus to the content; following its #main would be a route change.
document.querySelector(".skip").addEventListener("click", (event) => {
  event.preventDefault();
  main.focus();
});

window.addEventListener("hashchange", route);
route();
