// rollouts dashboard: live updates from the server's event stream, actions with confirmation,
// and the pause countdown. No framework; the server renders every fragment.
"use strict";

(function () {
  const token = document.querySelector('meta[name="rollouts-token"]').content;
  const stream = document.body.dataset.stream;
  const liveState = document.getElementById("live-state");

  // --- live updates ------------------------------------------------------------------------
  function matchesFilter(row) {
    const table = document.getElementById("rollouts");
    if (!table) return true;
    const ns = table.dataset.namespace, phase = table.dataset.phase;
    return (!ns || row.dataset.namespace === ns) && (!phase || row.dataset.phase === phase);
  }

  function updateCount() {
    const count = document.getElementById("row-count");
    const rows = document.getElementById("rows");
    if (count && rows) count.textContent = rows.querySelectorAll("tr").length;
    const empty = document.getElementById("empty");
    if (empty && rows && rows.querySelector("tr")) empty.remove();
  }

  function upsertRow(id, html) {
    const rows = document.getElementById("rows");
    if (!rows) return;
    const holder = document.createElement("tbody");
    holder.innerHTML = html.trim();
    const fresh = holder.firstElementChild;
    const old = document.getElementById(id);
    if (!matchesFilter(fresh)) {
      if (old) old.remove();
    } else if (old) {
      old.replaceWith(fresh);
    } else {
      // Keep the server's order (namespace, then name).
      const key = fresh.dataset.key;
      const next = Array.from(rows.children).find((r) => r.dataset.key > key);
      rows.insertBefore(fresh, next || null);
    }
    updateCount();
  }

  function replaceDetail(html) {
    const detail = document.getElementById("detail");
    if (!detail) return;
    const focused = document.activeElement && detail.contains(document.activeElement)
      ? document.activeElement.id : null;
    detail.innerHTML = html;
    if (focused && document.getElementById(focused)) document.getElementById(focused).focus();
    tick();
  }

  if (stream && window.EventSource) {
    const source = new EventSource(stream);
    source.addEventListener("open", () => { liveState.textContent = "live"; });
    source.addEventListener("error", () => { liveState.textContent = "reconnecting…"; });
    source.addEventListener("row", (e) => {
      const data = JSON.parse(e.data);
      upsertRow(data.id, data.html);
    });
    source.addEventListener("remove", (e) => {
      const el = document.getElementById(JSON.parse(e.data).id);
      if (el) el.remove();
      updateCount();
    });
    source.addEventListener("detail", (e) => replaceDetail(JSON.parse(e.data).html));
    source.addEventListener("synced", (e) => {
      liveState.textContent = "live";
      document.body.dataset.updates = String(Number(document.body.dataset.updates || 0) + 1);
      document.body.dataset.lastUpdate = JSON.parse(e.data).at;
    });
  } else {
    liveState.textContent = "";
  }

  // --- filters submit on change (the button stays for keyboard and no-script use) ---------
  const filters = document.getElementById("filters");
  if (filters) {
    filters.querySelectorAll("select").forEach((s) =>
      s.addEventListener("change", () => filters.submit()));
  }

  // --- pause countdown ----------------------------------------------------------------------
  function tick() {
    document.querySelectorAll("[data-deadline]").forEach((el) => {
      const left = Math.max(0, Math.ceil((Date.parse(el.dataset.deadline) - Date.now()) / 1000));
      const m = Math.floor(left / 60), s = left % 60;
      el.textContent = m ? `${m}m${String(s).padStart(2, "0")}s` : `${s}s`;
    });
  }
  tick();
  setInterval(tick, 1000);

  // --- actions --------------------------------------------------------------------------------
  const dialog = document.getElementById("confirm");
  const result = document.getElementById("result");
  let pending = null;

  function show(ok, text) {
    result.className = "result " + (ok ? "ok" : "error");
    result.textContent = text;
  }

  async function run(button) {
    show(true, `${button.dataset.label}…`);
    try {
      const response = await fetch(button.dataset.url, {
        method: "POST",
        headers: { "Content-Type": "application/json", "X-Rollouts-Token": token },
        body: JSON.stringify({ full: button.dataset.full === "true" }),
      });
      const data = await response.json();
      if (response.ok) {
        const changes = (data.changes || []).join("; ");
        show(true, data.message + (changes ? ` — ${changes}` : ""));
      } else {
        show(false, `Refused (${response.status}): ${data.error}`);
      }
    } catch (err) {
      show(false, `The dashboard could not be reached: ${err}`);
    }
  }

  document.querySelectorAll("button[data-operation]").forEach((button) => {
    button.addEventListener("click", () => {
      pending = button;
      document.getElementById("confirm-title").textContent = `${button.dataset.label}?`;
      document.getElementById("confirm-text").textContent = button.dataset.help;
      dialog.showModal();
      document.getElementById("confirm-ok").focus();
    });
  });
  if (dialog) {
    dialog.addEventListener("close", () => {
      const button = pending;
      pending = null;
      if (button) {
        button.focus();
        if (dialog.returnValue === "ok") run(button);
      }
    });
  }
})();
