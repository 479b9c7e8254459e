// The demo wallet's script: a static file, not inline, so the page works under the API's Content-Security-Policy.
const api = "/api/v1";
let token = null;
async function call(path, options = {}) {
  const r = await fetch(api + path, {...options, headers: {...(options.headers || {}),
    ...(token ? {Authorization: "Bearer " + token} : {}), "Content-Type": "application/json"}});
  if (!r.ok) { const p = await r.json(); throw new Error(p.detail + " (" + p.code + ")"); }
  return r;
}
async function refreshQr() {
  const blob = await (await call("/me/card/qr")).blob();
  document.getElementById("qr").src = URL.createObjectURL(blob);
}
async function show() {
  const me = await (await call("/me")).json();
  const wallet = await (await call("/me/wallet")).json();
  const ledger = await (await call("/me/ledger?limit=20")).json();
  document.getElementById("name").textContent = me.name;
  document.getElementById("number").textContent = wallet.card.number;
  document.getElementById("tier").textContent = wallet.card.tier;
  document.getElementById("balance").textContent = wallet.points.balance;
  const list = document.getElementById("ledger");
  list.replaceChildren(...ledger.items.map(e => {
    const li = document.createElement("li");
    const text = document.createElement("span"); text.textContent = e.description || e.reason;
    const delta = document.createElement("span"); delta.textContent = (e.delta > 0 ? "+" : "") + e.delta;
    delta.className = e.delta > 0 ? "plus" : "minus";
    li.append(text, delta); return li;
  }));
  await refreshQr();
  document.getElementById("wallet").hidden = false;
  document.getElementById("login").hidden = true;
  setInterval(refreshQr, 60000);  // the code inside changes every few minutes: a screenshot stops working
}
document.getElementById("login").addEventListener("submit", async (e) => {
  e.preventDefault();
  const form = new FormData(e.target);
  try {
    const r = await call("/auth/token", {method: "POST",
      body: JSON.stringify({email: form.get("email"), password: form.get("password")})});
    token = (await r.json()).access_token;
    await show();
  } catch (err) { document.getElementById("error").textContent = err.message; }
});
