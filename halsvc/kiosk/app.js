// The demo kiosk page: the resident flows of the station over the halsvc WebSocket bridge.
// Plain JavaScript, no build step, nothing loaded from elsewhere (the bridge's CSP forbids it).
// Citizen data (the card's contents, readings, payments) lives only in this page's memory and
// on screen, and is cleared when the resident goes back or walks away.
"use strict";

const $ = (id) => document.getElementById(id);
const BILL = {customer: "PB01234567", period: "11/2026", amount: 150000,
              reference: "NUOC-PB01234567-202611", bin: "970436", account: "0071000888888"};

const state = {
  lang: "vi",
  methods: new Set(),
  ws: null,
  opened: false,
  failures: 0,
  nextId: 1,
  pending: new Map(),   // request id -> {resolve, reject}
  progress: new Map(),  // request id -> progress callback
  payAttempt: Number(sessionStorage.getItem("halsvc.attempt") || 0),
  payment: null,        // the approved payment, for the receipt
  claims: new Set(),    // devices this page holds for the resident in front of it
};

// --- language -------------------------------------------------------------------------------
function t(key, vars) {
  const table = window.I18N[state.lang] || window.I18N.vi;
  let text = table[key] ?? window.I18N.vi[key] ?? key;
  for (const [k, v] of Object.entries(vars || {})) text = text.replace(`{${k}}`, v);
  return text;
}

function reasonText(reason) {
  const key = `reason.${reason}`;
  return key in window.I18N[state.lang] ? t(key) : t("error", {why: reason});
}

// A status line keeps its key, so switching language re-renders it.
function setStatus(el, key, vars, kind) {
  delete el.dataset.reason;
  delete el.dataset.outcome;
  el.dataset.key = key || "";
  el.dataset.vars = JSON.stringify(vars || {});
  el.dataset.kind = kind || "info";
  el.textContent = key ? t(key, vars) : "";
}

function showError(el, err) {
  const reason = err.reason || "internal_error";
  setStatus(el, `reason.${reason}` in window.I18N.vi ? `reason.${reason}` : "error",
            {why: reason}, "error");
  el.dataset.reason = reason;
}

function applyLang() {
  document.documentElement.lang = state.lang;
  for (const el of document.querySelectorAll("[data-i18n]")) el.textContent = t(el.dataset.i18n);
  for (const el of document.querySelectorAll("[data-key]")) {
    if (el.dataset.key) el.textContent = t(el.dataset.key, JSON.parse(el.dataset.vars || "{}"));
  }
  $("lang").textContent = state.lang === "vi" ? "EN" : "VI";
  document.title = t("title");
  renderBill();
}

// --- JSON-RPC over the bridge ----------------------------------------------------------------
class RpcError extends Error {
  constructor(error) {
    super(error.message);
    this.code = error.code;
    this.data = error.data || {};
    this.reason = this.data.reason || "internal_error";
  }
}

function call(method, params, onProgress) {
  return new Promise((resolve, reject) => {
    const ws = state.ws;
    if (!ws || ws.readyState !== WebSocket.OPEN) {
      reject(new RpcError({code: -32000, message: "not connected", data: {reason: "disconnected"}}));
      return;
    }
    const id = state.nextId++;
    state.pending.set(id, {resolve, reject});
    if (onProgress) state.progress.set(id, onProgress);
    ws.send(JSON.stringify({jsonrpc: "2.0", id, method, params: params || {}}));
  });
}

function onMessage(msg) {
  if (Array.isArray(msg)) { msg.forEach(onMessage); return; }
  if (msg.method === "event") {
    const ev = msg.params;
    if (ev.request_id !== undefined && state.progress.has(ev.request_id)) {
      state.progress.get(ev.request_id)(ev.data, ev);
    } else {
      onBroadcast(ev);
    }
    return;
  }
  const waiter = state.pending.get(msg.id);
  if (!waiter) return;
  state.pending.delete(msg.id);
  state.progress.delete(msg.id);
  if (msg.error) waiter.reject(new RpcError(msg.error)); else waiter.resolve(msg.result);
}

function setLink(which) {
  const el = $("link");
  el.dataset.state = which;
  el.dataset.i18n = `link.${which}`;
  el.textContent = t(`link.${which}`);
  const banner = $("banner");
  banner.hidden = which === "up" || which === "connecting";
  if (!banner.hidden) setStatus(banner, which === "refused" ? "banner.refused" : "banner.down", {}, "error");
}

function connect() {
  const token = new URLSearchParams(location.hash.slice(1)).get("token") || "";
  const ws = new WebSocket(`ws://${location.host}/rpc?token=${encodeURIComponent(token)}`);
  state.ws = ws;
  ws.onopen = () => {
    state.opened = true;
    state.failures = 0;
    setLink("up");
    refresh().catch(() => {});
  };
  ws.onmessage = (m) => onMessage(JSON.parse(m.data));
  ws.onclose = () => {
    for (const waiter of state.pending.values()) {
      waiter.reject(new RpcError({code: -32000, message: "disconnected", data: {reason: "disconnected"}}));
    }
    state.pending.clear();
    state.progress.clear();
    state.claims.clear();  // they ended with the connection
    state.failures += 1;
    // This page came from the bridge itself, so a WebSocket that never opens was refused
    // (HTTP 403: wrong token or Origin), not unreachable.
    setLink(state.opened ? "down" : "refused");
    setTimeout(connect, Math.min(10000, 500 * 2 ** Math.min(state.failures, 5)));
  };
}

// What this station offers decides which tiles are live: rpc.discover lists the methods of
// the devices it has configured, so a flow lights up as soon as its device is there.
async function refresh() {
  const doc = await call("rpc.discover");
  state.methods = new Set(doc.methods.map((m) => m.name));
  for (const el of document.querySelectorAll("[data-needs], [data-needs-any]")) {
    const all = (el.dataset.needs || "").split(" ").filter(Boolean);
    const any = (el.dataset.needsAny || "").split(" ").filter(Boolean);
    const ok = all.every((m) => state.methods.has(m)) && (!any.length || any.some((m) => state.methods.has(m)));
    el.disabled = !ok;
    el.classList.toggle("unavailable", !ok);
  }
  document.body.dataset.ready = "true";
  await call("events.subscribe", {topics: ["presence.changed"]});
}

function onBroadcast(ev) {
  // The resident walked away: nothing of theirs stays on screen.
  if (ev.topic === "presence.changed" && ev.data.present === false) goHome();
}

// --- screens ---------------------------------------------------------------------------------
function show(id) {
  for (const el of document.querySelectorAll(".screen")) el.hidden = el.id !== id;
}

function goHome() {
  clearIdCard();
  clearReadings();
  clearPayment();
  releaseClaims();
  show("home");
}

// While a resident is in a flow, its devices are this page's alone: another client gets
// device_busy. The claim ends on Back, when the resident walks away, at lease expiry, or when
// this page's connection closes (a crashed page never locks the station).
const FLOW_KINDS = {idcard: ["idcard"], bp: ["health"], weigh: ["scale"], pay: ["payment", "printer"]};
const LEASE_MS = 300000;

async function claimFor(flow) {
  const status = document.querySelector(`#${flow} .status`);
  let devices;
  try {
    devices = (await call("device.list")).devices;
  } catch (err) {
    return;
  }
  for (const kind of FLOW_KINDS[flow] || []) {
    const dev = devices.find((d) => d.kind === kind);
    if (!dev) continue;
    try {
      await call("device.claim", {device: dev.device, lease_ms: LEASE_MS});
      if ($(flow).hidden) {  // the resident went back meanwhile
        call("device.release", {device: dev.device}).catch(() => {});
        continue;
      }
      state.claims.add(dev.device);
    } catch (err) {
      showError(status, err);
    }
  }
}

function releaseClaims() {
  for (const device of state.claims) call("device.release", {device}).catch(() => {});
  state.claims.clear();
}

function busy(button, on) {
  button.disabled = on;
  button.classList.toggle("busy", on);
}

// --- ID card ---------------------------------------------------------------------------------
function clearIdCard() {
  $("can").value = "";
  $("idcard-person").hidden = true;
  $("idcard-photo").removeAttribute("src");
  for (const id of ["idcard-name", "idcard-number", "idcard-birth", "idcard-check"]) $(id).textContent = "";
  $("idcard-progress").hidden = true;
  setStatus($("idcard-status"), "");
}

function dmy(iso) {
  const m = /^(\d{4})-(\d{2})-(\d{2})/.exec(iso || "");
  return m ? `${m[3]}/${m[2]}/${m[1]}` : (iso || "");
}

async function readIdCard() {
  const status = $("idcard-status");
  const can = $("can").value.trim();
  if (!/^[0-9]{6}$/.test(can)) { setStatus(status, "idcard.bad_can", {}, "error"); return; }
  const button = $("idcard-read");
  const bar = $("idcard-progress");
  busy(button, true);
  $("idcard-person").hidden = true;
  setStatus(status, "idcard.waiting_for_card");
  try {
    const card = await call("idcard.read", {can, wait_ms: 30000, timeout_ms: 90000}, (data) => {
      if (data.step === "waiting_for_card") setStatus(status, "idcard.waiting_for_card");
      else if (data.step === "access" || data.step === "access_granted") setStatus(status, "idcard.access");
      else if (data.step === "read") {
        setStatus(status, "idcard.reading");
        bar.hidden = false;
        bar.value = data.total ? Math.round(100 * data.bytes / data.total) : 0;
      } else if (data.step === "verify") setStatus(status, "idcard.verify");
    });
    $("idcard-name").textContent = card.full_name || "";
    $("idcard-number").textContent = card.id_number || "";
    $("idcard-birth").textContent = dmy(card.birth_date);
    const valid = (card.authenticity || {}).status === "valid";
    $("idcard-check").dataset.key = valid ? "idcard.valid" : "idcard.invalid";
    $("idcard-check").textContent = t(valid ? "idcard.valid" : "idcard.invalid");
    if (card.face && card.face.data) $("idcard-photo").src = `data:${card.face.mime};base64,${card.face.data}`;
    $("idcard-person").hidden = false;
    $("can").value = "";  // the CAN is the card's key: not left on screen
    setStatus(status, "idcard.done", {}, "ok");
  } catch (err) {
    showError(status, err);
  } finally {
    bar.hidden = true;
    busy(button, false);
  }
}

// --- blood pressure --------------------------------------------------------------------------
// A reading's value: a number, or {value, unit}.
function num(x) {
  if (typeof x === "number") return x;
  if (x && typeof x.value === "number") return x.value;
  return null;
}

function field(obj, ...names) {
  for (const name of names) {
    if (obj && num(obj[name]) !== null) return num(obj[name]);
  }
  return null;
}

function setCuff(mmhg) {
  const p = Math.max(0, Math.min(300, mmhg));
  $("bp-arc").setAttribute("stroke-dasharray", `${p} 300`);
  $("bp-cuff").textContent = String(Math.round(mmhg));
  $("bp-gauge").setAttribute("aria-valuenow", String(Math.round(mmhg)));
}

function clearReadings() {
  setCuff(0);
  $("bp-result").hidden = true;
  setStatus($("bp-status"), "");
  setStatus($("bp-assess"), "");
  $("weigh-kg").textContent = "–";
  $("weigh-bmi-row").hidden = true;
  setStatus($("weigh-class"), "");
  setStatus($("weigh-status"), "");
}

function assessBp(sys, dia) {
  if (sys >= 140 || dia >= 90) return "bp.high";
  if (sys >= 120 || dia >= 80) return "bp.elevated";
  if (sys < 90 || dia < 60) return "bp.low";
  return "bp.normal";
}

async function measureBp() {
  const status = $("bp-status");
  const button = $("bp-start");
  busy(button, true);
  $("bp-result").hidden = true;
  setCuff(0);
  setStatus(status, "bp.connecting");
  try {
    const r = await call("health.measure", {kind: "blood_pressure", timeout_ms: 180000}, (data, ev) => {
      if (ev.topic === "health.cuff_pressure" && typeof data.pressure_mmhg === "number") {
        setCuff(data.pressure_mmhg);
      } else if (ev.topic === "health.progress") {
        setStatus(status, data.stage === "measuring" ? "bp.measuring" : "bp.connecting");
      }
    });
    const values = r.values || r;
    const sys = field(values, "systolic", "systolic_mmhg");
    const dia = field(values, "diastolic", "diastolic_mmhg");
    const pulse = field(values, "pulse_rate", "pulse", "pulse_bpm");
    $("bp-sys").textContent = sys === null ? "–" : String(Math.round(sys));
    $("bp-dia").textContent = dia === null ? "–" : String(Math.round(dia));
    $("bp-pulse").textContent = pulse === null ? "–" : String(Math.round(pulse));
    setStatus($("bp-assess"), sys !== null && dia !== null ? assessBp(sys, dia) : "");
    $("bp-result").hidden = false;
    setStatus(status, "bp.done", {}, "ok");
  } catch (err) {
    showError(status, err);
  } finally {
    busy(button, false);
  }
}

// --- weight and BMI --------------------------------------------------------------------------
function decimal(x, digits) {
  return x.toLocaleString(state.lang === "vi" ? "vi-VN" : "en-GB",
                          {minimumFractionDigits: digits, maximumFractionDigits: digits});
}

// WHO Asia-Pacific cut-offs, as Vietnamese clinics use (and the printer's health slip).
function bmiClass(bmi) {
  if (bmi < 18.5) return "bmi.under";
  if (bmi < 23) return "bmi.normal";
  if (bmi < 25) return "bmi.over";
  return "bmi.obese";
}

async function weigh() {
  const status = $("weigh-status");
  const cm = Number($("height").value);
  if (!(cm >= 50 && cm <= 250)) { setStatus(status, "weigh.bad_height", {}, "error"); return; }
  const button = $("weigh-start");
  busy(button, true);
  $("weigh-bmi-row").hidden = true;
  setStatus(status, "weigh.step_on");
  try {
    const r = await call("scale.read", {height_m: cm / 100, timeout_ms: 90000}, (data) => {
      if (typeof data.weight_kg === "number") $("weigh-kg").textContent = decimal(data.weight_kg, 1);
    });
    $("weigh-kg").textContent = decimal(r.weight_kg, 1);
    if (typeof r.bmi === "number") {
      $("weigh-bmi").textContent = decimal(r.bmi, 1);
      setStatus($("weigh-class"), bmiClass(r.bmi));
      $("weigh-bmi-row").hidden = false;
    }
    setStatus(status, "weigh.done", {}, "ok");
  } catch (err) {
    showError(status, err);
  } finally {
    busy(button, false);
  }
}

// --- paying the water bill -------------------------------------------------------------------
function vnd(amount) {
  return `${amount.toLocaleString("vi-VN")} ₫`;
}

function renderBill() {
  $("bill-customer").textContent = BILL.customer;
  $("bill-period").textContent = BILL.period;
  $("bill-amount").textContent = vnd(BILL.amount);
}

function clearPayment() {
  state.payment = null;
  $("pay-qr-box").hidden = true;
  $("pay-qr-img").removeAttribute("src");
  $("receipt").hidden = true;
  $("receipt-img").hidden = true;
  $("receipt-img").removeAttribute("src");
  setStatus($("pay-status"), "");
  setStatus($("receipt-status"), "");
  for (const b of document.querySelectorAll("#pay-choices button")) b.hidden = false;
}

// One idempotency key per payment the resident chooses to make. It is kept while the outcome
// is unknown (a timeout, a lost connection): pressing again asks for that same payment, which
// the daemon answers with its first outcome and never charges twice. Only a final outcome
// that charged nothing (declined, aborted) moves on to a new key.
function paymentKey() {
  return `kiosk-${session()}-${BILL.reference}-${state.payAttempt}`;
}

// A random id for this browser tab, kept across reloads (sessionStorage holds nothing else): a
// reload in the middle of a payment asks again with the same key instead of charging twice.
function session() {
  let id = sessionStorage.getItem("halsvc.session");
  if (!id) {
    const bytes = crypto.getRandomValues(new Uint8Array(8));
    id = Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
    sessionStorage.setItem("halsvc.session", id);
  }
  return id;
}

async function payByCard() {
  const status = $("pay-status");
  const button = $("pay-card");
  busy(button, true);
  setStatus(status, "pay.sent");
  const key = paymentKey();
  try {
    const r = await call("payment.pay", {amount: BILL.amount, currency: "VND", reference: BILL.reference,
                                         idempotency_key: key, timeout_ms: 180000}, (data) => {
      if (data.phase === "prompt" && data.text) { status.dataset.key = ""; status.textContent = data.text; }
      else if (data.phase === "sent") setStatus(status, "pay.sent");
      else if (data.phase === "asking_terminal") setStatus(status, "pay.asking");
    });
    if (["approved", "declined", "aborted", "not_charged"].includes(r.status)) {
      // A final outcome: the next payment is a new one, with a new key.
      state.payAttempt += 1;
      sessionStorage.setItem("halsvc.attempt", String(state.payAttempt));
    }
    if (r.status === "approved") {
      setStatus(status, "pay.approved", {}, "ok");
      paid({method: "card", key, transaction_id: r.terminal_transaction_id || ""});
    } else if (["declined", "aborted", "not_charged"].includes(r.status)) {
      setStatus(status, `pay.${r.status}`, {}, "error");
    } else {
      setStatus(status, "pay.unknown", {}, "error");
    }
    status.dataset.outcome = r.status;
  } catch (err) {
    showError(status, err);
  } finally {
    busy(button, false);
  }
}

async function payByQr() {
  const status = $("pay-status");
  const button = $("pay-qr");
  busy(button, true);
  setStatus(status, "");
  try {
    const r = await call("payment.vietqr", {amount: BILL.amount, bin: BILL.bin, account: BILL.account,
                                            bill_number: BILL.customer, purpose: `Tien nuoc ${BILL.period.replace("/", " ")}`});
    $("pay-qr-img").src = `data:image/png;base64,${r.png}`;
    $("pay-qr-img").dataset.payload = r.payload;
    $("pay-qr-box").hidden = false;
  } catch (err) {
    showError(status, err);
  } finally {
    busy(button, false);
  }
}

function paid(payment) {
  state.payment = payment;
  $("pay-qr-box").hidden = true;
  for (const b of document.querySelectorAll("#pay-choices button")) b.hidden = true;
  $("receipt").hidden = false;
}

function now() {
  const d = new Date();
  const p = (n) => String(n).padStart(2, "0");
  return `${p(d.getDate())}/${p(d.getMonth() + 1)}/${d.getFullYear()} ${p(d.getHours())}:${p(d.getMinutes())}`;
}

function receiptData() {
  const pay = state.payment;
  const data = {amount: BILL.amount, items: [{label: t("receipt.item", {period: BILL.period}), amount: BILL.amount}],
                method: t(`receipt.method.${pay.method}`), reference: BILL.reference, time: now(),
                status: "Thành công"};
  if (pay.transaction_id) data.transaction_id = pay.transaction_id;
  return data;
}

async function printReceipt() {
  const status = $("receipt-status");
  const button = $("receipt-print");
  busy(button, true);
  setStatus(status, "receipt.printing");
  const data = receiptData();
  try {
    // The job id is the print's idempotency key: pressing again never prints a second receipt.
    const r = await call("printer.print", {job_id: `${state.payment.key}-receipt`, template: "payment_receipt",
                                           data, timeout_ms: 120000});
    if (r.status === "printed") setStatus(status, "receipt.printed", {}, "ok");
    else {
      setStatus(status, "receipt.failed", {why: reasonText(r.reason || "hardware_error")}, "error");
      status.dataset.reason = r.reason || "hardware_error";
    }
    status.dataset.outcome = r.status;
  } catch (err) {
    showError(status, err);
  } finally {
    busy(button, false);
  }
  await showReceipt(data);
}

// The receipt as the printer draws it (printer.preview renders in the driver: a real printer
// sends no image back), shown whether or not the paper came out.
async function showReceipt(data) {
  if (!state.methods.has("printer.preview")) return;
  try {
    const r = await call("printer.preview", {template: "payment_receipt", data});
    $("receipt-img").src = `data:${r.mime};base64,${r.png}`;
    $("receipt-img").hidden = false;
  } catch (err) {
    // The receipt image is a courtesy; the print status above already says what happened.
  }
}

// --- wiring ----------------------------------------------------------------------------------
function start() {
  const lang = new URLSearchParams(location.hash.slice(1)).get("lang");
  if (lang === "en" || lang === "vi") state.lang = lang;
  for (const tile of document.querySelectorAll(".tile")) {
    tile.addEventListener("click", () => {
      if (tile.disabled) return;
      show(tile.dataset.flow);
      claimFor(tile.dataset.flow);
    });
  }
  for (const back of document.querySelectorAll(".back")) back.addEventListener("click", goHome);
  $("lang").addEventListener("click", () => { state.lang = state.lang === "vi" ? "en" : "vi"; applyLang(); });
  $("idcard-read").addEventListener("click", readIdCard);
  $("bp-start").addEventListener("click", measureBp);
  $("weigh-start").addEventListener("click", weigh);
  $("pay-card").addEventListener("click", payByCard);
  $("pay-qr").addEventListener("click", payByQr);
  $("pay-qr-done").addEventListener("click", () => {
    paid({method: "vietqr", key: `kiosk-${session()}-${BILL.reference}-qr`, transaction_id: ""});
  });
  $("receipt-print").addEventListener("click", printReceipt);
  applyLang();
  connect();
}

document.addEventListener("DOMContentLoaded", start);
