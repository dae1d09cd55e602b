// The back office's inbox: ticks the answer-deadline countdowns, and on a conversation
// page sends replies over the agent's WebSocket and shows incoming messages live. The
// page works without it: the countdowns are rendered by the server and the reply form
// posts normally.
(function () {
  "use strict";

  var serverNow = Date.parse(document.body.dataset.serverNow || "");
  // The server's clock is the reference: the countdown does not depend on this computer's.
  var offset = isNaN(serverNow) ? 0 : serverNow - Date.now();

  function duration(seconds) {
    var minutes = Math.floor(seconds / 60);
    var days = Math.floor(minutes / 1440);
    var hours = Math.floor((minutes % 1440) / 60);
    var rest = minutes % 60;
    if (days) { return days + " d " + hours + " h"; }
    if (hours) { return hours + " h " + (rest < 10 ? "0" : "") + rest + " min"; }
    return rest + " min";
  }

  function tick() {
    var now = Date.now() + offset;
    var clocks = document.querySelectorAll("time.countdown[data-due]");
    for (var i = 0; i < clocks.length; i++) {
      var clock = clocks[i];
      var due = Date.parse(clock.dataset.due);
      if (isNaN(due)) { continue; }
      var seconds = Math.trunc((due - now) / 1000);
      clock.textContent = seconds >= 0
        ? duration(seconds) + " left"
        : "overdue by " + duration(-seconds);
      if (seconds < 0) {
        var holder = clock.closest("[data-sla]");
        if (holder && holder.tagName === "TR") { holder.className = "breached"; }
        else if (holder) { holder.classList.add("breach"); }
      }
    }
  }

  tick();
  window.setInterval(tick, 15000);

  var form = document.getElementById("reply-form");
  var list = document.getElementById("messages");
  if (!form || !list || !("WebSocket" in window)) { return; }
  var box = document.getElementById("reply");
  var status = document.getElementById("live-status");
  var labels = { debtor: "Debtor", agent: "Agent", system: "System" };
  var socket = null;

  function pad(n) { return (n < 10 ? "0" : "") + n; }

  function shown(at) {
    var d = new Date(at);
    if (isNaN(d.getTime())) { return at; }
    return d.getFullYear() + "-" + pad(d.getMonth() + 1) + "-" + pad(d.getDate()) + " " +
      pad(d.getHours()) + ":" + pad(d.getMinutes());
  }

  function append(message) {
    if (document.getElementById("m-" + message.id)) { return; }
    var empty = list.querySelector(".empty");
    if (empty) { empty.remove(); }
    var item = document.createElement("li");
    item.className = "msg msg-" + message.author;
    item.id = "m-" + message.id;
    var meta = document.createElement("p");
    meta.className = "meta";
    var author = document.createElement("span");
    author.className = "author";
    author.textContent = labels[message.author] || message.author;
    var time = document.createElement("time");
    time.dateTime = message.at;
    time.textContent = shown(message.at);
    meta.appendChild(author);
    meta.appendChild(document.createTextNode(" "));
    meta.appendChild(time);
    if (message.late) {
      var badge = document.createElement("span");
      badge.className = "badge";
      badge.textContent = "late";
      meta.appendChild(document.createTextNode(" "));
      meta.appendChild(badge);
    }
    var body = document.createElement("p");
    body.className = "body";
    body.textContent = message.body;
    item.appendChild(meta);
    item.appendChild(body);
    list.appendChild(item);
    list.scrollTop = list.scrollHeight;
    if (message.author === "agent") {
      var deadline = document.getElementById("deadline");
      if (deadline) {
        deadline.textContent = "Nothing waits for an answer.";
        deadline.classList.remove("breach");
      }
    }
  }

  function connect() {
    var scheme = window.location.protocol === "https:" ? "wss://" : "ws://";
    socket = new WebSocket(scheme + window.location.host + form.dataset.socket);
    socket.addEventListener("open", function () {
      status.textContent = "Live: replies are sent at once.";
      form.dataset.live = "1";
    });
    socket.addEventListener("message", function (event) {
      var data;
      try { data = JSON.parse(event.data); } catch (e) { return; }
      if (data.type === "message") { append(data); }
      else if (data.type === "hello") {
        status.textContent = data.debtor_online
          ? "Live: the debtor is on their page and sees your reply at once."
          : "Live: the debtor is away; they are told by e-mail or SMS that an answer waits.";
      }
      else if (data.type === "error") { status.textContent = data.detail || "Not sent."; }
    });
    socket.addEventListener("close", function () {
      delete form.dataset.live;
      status.textContent = "";
      socket = null;
    });
  }

  form.addEventListener("submit", function (event) {
    if (!socket || socket.readyState !== WebSocket.OPEN) { return; }  // plain POST
    event.preventDefault();
    var text = box.value.trim();
    if (!text) { return; }
    socket.send(JSON.stringify({ type: "message", body: text }));
    box.value = "";
    box.focus();
  });

  connect();
})();
