// The debtor page's small enhancements; every feature works without them.
// - copy buttons next to the IBAN and the structured communication;
// - the chat panel upgrades its plain form to a WebSocket: messages appear live.
"use strict";

function setUpCopyButtons(root) {
  root.querySelectorAll("button.copy").forEach((button) => {
    if (!navigator.clipboard) return;
    button.hidden = false;
    button.addEventListener("click", () => {
      const source = document.getElementById(button.dataset.copy);
      const text = source.textContent.replace(/\s+/g, source.id === "iban" ? "" : " ").trim();
      navigator.clipboard.writeText(text).then(() => { button.textContent = "✓"; });
    });
  });
}

function appendMessage(log, payload) {
  const item = document.createElement("li");
  item.className = payload.author;
  const who = document.createElement("span");
  who.className = "who";
  who.textContent = payload.author === "debtor" ? log.dataset.you : log.dataset.adviser;
  item.append(who, " ", payload.body);
  log.append(item);
  log.scrollTop = log.scrollHeight;
}

function setUpChat(root) {
  const panel = root.querySelector("section.chat[data-socket]");
  if (!panel || !("WebSocket" in window) || panel.dataset.live) return;
  panel.dataset.live = "1";
  const log = panel.querySelector("#chat-log");
  const form = panel.querySelector("#chat-form");
  const field = form.querySelector("textarea");
  const status = panel.querySelector("#chat-status");
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  let socket = null;
  let seen = new Set();
  function connect() {
    socket = new WebSocket(scheme + "//" + location.host + panel.dataset.socket);
    socket.addEventListener("message", (event) => {
      const payload = JSON.parse(event.data);
      if (payload.type === "message" && !seen.has(payload.id)) {
        seen.add(payload.id);
        appendMessage(log, payload);
        status.textContent = "";
      } else if (payload.type === "error") {
        status.textContent = payload.code === "too_fast" ? panel.dataset.tooFast : panel.dataset.notSent;
      }
    });
    socket.addEventListener("close", () => { socket = null; });
  }
  connect();
  form.addEventListener("submit", (event) => {
    const body = field.value.trim();
    if (!socket || socket.readyState !== WebSocket.OPEN || !body) return; // plain POST instead
    event.preventDefault();
    socket.send(JSON.stringify({ type: "message", body: body }));
    field.value = "";
  });
}

function enhance(root) {
  setUpCopyButtons(root);
  setUpChat(root);
}

document.addEventListener("DOMContentLoaded", () => enhance(document));
document.addEventListener("htmx:load", (event) => enhance(event.detail.elt));
