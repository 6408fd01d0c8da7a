// pbxsms console: the segment counter and live updates. The pages work without it.
"use strict";

// GSM 03.38: the basic table, and the extension table whose characters take two septets.
const GSM_BASIC = new Set(Array.from(
  "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?" +
  "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"));
const GSM_EXTENSION = new Set(Array.from("^{}\\[~]|€\f"));

// The same rules as the gateway's count (core/model/segments.py).
function countSegments(text) {
  const chars = Array.from(text);
  const gsm = chars.every((c) => GSM_BASIC.has(c) || GSM_EXTENSION.has(c));
  const encoding = gsm ? "GSM-7" : "UCS-2";
  const cost = (c) => (gsm ? (GSM_EXTENSION.has(c) ? 2 : 1) : (c.codePointAt(0) > 0xffff ? 2 : 1));
  const units = chars.reduce((sum, c) => sum + cost(c), 0);
  const [single, multi] = gsm ? [160, 153] : [70, 67];
  if (units === 0) return { encoding, units, segments: 0 };
  if (units <= single) return { encoding, units, segments: 1 };
  let segments = 1, used = 0;
  for (const c of chars) {
    const n = cost(c);
    if (used + n > multi) { segments += 1; used = 0; }
    used += n;
  }
  return { encoding, units, segments };
}

function setupCounter() {
  const box = document.getElementById("reply");
  const counter = document.getElementById("counter");
  if (!box || !counter) return;
  const limit = Number(box.dataset.maxSegments || "6");
  const update = () => {
    const count = countSegments(box.value);
    const parts = count.segments === 1 ? "1 part" : `${count.segments} parts`;
    counter.textContent = `${count.units} ${count.encoding} characters · ${parts}`;
    const over = count.segments > limit;
    counter.classList.toggle("over", over);
    if (over) counter.textContent += ` (limit ${limit})`;
    document.getElementById("send").disabled = over;
  };
  box.addEventListener("input", update);
  box.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
      event.preventDefault();
      box.form.requestSubmit();
    }
  });
  update();
}

function fromHtml(html) {
  const template = document.createElement("template");
  template.innerHTML = html.trim();
  return template.content.firstElementChild;
}

// Replace the element with the same id, or put the new one in order.
function upsertMessage(list, data) {
  const node = fromHtml(data.html);
  const existing = document.getElementById(node.id);
  const nearBottom = window.innerHeight + window.scrollY >= document.body.scrollHeight - 120;
  if (existing) {
    existing.replaceWith(node);
    return;
  }
  const after = Array.from(list.children).find((li) => Number(li.dataset.n) > data.n);
  list.insertBefore(node, after || null);
  node.classList.add("flash");
  if (nearBottom) node.scrollIntoView({ block: "end" });
}

function upsertThread(list, data) {
  const node = fromHtml(data.html);
  const existing = document.getElementById(node.id);
  if (existing) existing.remove();
  list.insertBefore(node, list.firstElementChild);
  const empty = document.getElementById("no-threads");
  if (empty) empty.remove();
}

function setupLive() {
  const url = document.body.dataset.live;
  if (!url || !window.EventSource) return;
  const state = document.getElementById("live-state");
  const source = new EventSource(url);
  const say = (text) => { if (state) { state.hidden = false; state.textContent = text; } };
  source.addEventListener("open", () => say("● live"));
  source.addEventListener("error", () => say("reconnecting…"));
  source.addEventListener("message", (event) => {
    const list = document.getElementById("messages");
    if (list) upsertMessage(list, JSON.parse(event.data));
  });
  source.addEventListener("thread", (event) => {
    const list = document.getElementById("threads");
    if (list) upsertThread(list, JSON.parse(event.data));
  });
}

function setupCopy() {
  for (const input of document.querySelectorAll("input.copy")) {
    input.addEventListener("focus", () => input.select());
  }
}

function scrollThread() {
  if (document.body.dataset.page === "thread" && !location.hash.startsWith("#m-")) {
    const compose = document.getElementById("compose");
    if (compose) compose.scrollIntoView({ block: "end" });
  }
}

document.addEventListener("DOMContentLoaded", () => {
  setupCounter();
  setupLive();
  setupCopy();
  scrollThread();
});
