// ironpush inspector: live updates over /_dev/events (Server-Sent Events). No dependencies.
// New events become rows of the live feed; the parts of the page an event touches (the queue
// table, a message's attempts) are fetched again as server-rendered fragments.
(function () {
  "use strict";
  const meta = (name) => {
    const el = document.querySelector('meta[name="' + name + '"]');
    return el ? el.getAttribute("content") : "";
  };
  const live = document.getElementById("live");
  const feed = document.getElementById("feed");
  const feedEmpty = document.getElementById("feed-empty");
  const MAX_ROWS = 300;
  const TYPES = ["push", "ack", "expired", "error_queue", "replay", "dropped"];

  // Ask before destructive buttons (forms with data-confirm).
  document.addEventListener("submit", (ev) => {
    const form = ev.target;
    const question = form.getAttribute && form.getAttribute("data-confirm");
    if (question && !window.confirm(question)) ev.preventDefault();
  });

  const enc = encodeURIComponent;
  const messageHref = (e) =>
    "/_dev/ui/q/" + enc(e.project) + "/" + enc(e.queue) + "/m/" + enc(e.message_id);

  function cell(row, text, cls) {
    const td = document.createElement("td");
    if (cls) td.className = cls;
    if (text instanceof Node) td.appendChild(text);
    else td.textContent = text == null ? "-" : String(text);
    row.appendChild(td);
    return td;
  }

  function addRow(e) {
    if (!feed) return;
    const row = document.createElement("tr");
    row.dataset.id = e.id;
    cell(row, (e.at || "").slice(11, 23), "t");
    const badge = document.createElement("span");
    badge.className = "badge b-" + e.outcome;
    badge.textContent = e.outcome;
    cell(row, badge);
    cell(row, e.queue);
    if (e.message_id && e.project && e.queue) {
      const a = document.createElement("a");
      a.href = messageHref(e);
      a.textContent = e.message_id;
      cell(row, a);
    } else {
      cell(row, e.message_id);
    }
    cell(row, e.subscriber || (e.subscribers || []).join(", ") || null);
    cell(row, e.text, "detail");
    row.classList.add("fresh");
    feed.insertBefore(row, feed.firstChild);
    while (feed.rows.length > MAX_ROWS) feed.deleteRow(feed.rows.length - 1);
    if (feedEmpty) feedEmpty.hidden = true;
  }

  // Fetch a fragment again (at most one request in flight per fragment, one more queued).
  const pending = {};
  function refresh(el) {
    const name = el.dataset.fragment;
    if (pending[name]) {
      pending[name] = "again";
      return;
    }
    pending[name] = true;
    const url = new URL(window.location.href);
    url.search = "fragment=" + enc(name);
    fetch(url, { credentials: "same-origin", headers: { Accept: "text/html" } })
      .then((r) => (r.ok ? r.text() : Promise.reject(r.status)))
      .then((html) => {
        el.innerHTML = html; // server-rendered and escaped there
      })
      .catch(() => {})
      .finally(() => {
        const again = pending[name] === "again";
        pending[name] = false;
        if (again) refresh(el);
      });
  }

  function onEvent(msg) {
    let e;
    try {
      e = JSON.parse(msg.data);
    } catch (err) {
      return;
    }
    if (e.type === "dropped") {
      setLive(false, "fell behind: reconnecting");
      return;
    }
    addRow(e);
    document.querySelectorAll("[data-fragment]").forEach(refresh);
  }

  function setLive(on, text) {
    if (!live) return;
    live.className = "live " + (on ? "on" : "off");
    live.textContent = text;
  }

  if (!window.EventSource) {
    setLive(false, "no live updates in this browser");
    return;
  }
  const params = new URLSearchParams(meta("stream-query"));
  params.set("after", meta("last-event-id") || "0");
  const source = new EventSource("/_dev/events?" + params.toString());
  TYPES.forEach((t) => source.addEventListener(t, onEvent));
  source.onopen = () => setLive(true, "live");
  source.onerror = () => setLive(false, "reconnecting…");
})();
