// tasuki run page: follows a running run over Server-Sent Events
// (GET /runs/{id}/live) and applies each batch of changed tasks to the
// graph's nodes, the task list's rows, the counts and the buttons, without
// reloading. The stream's event ids let the browser resume after a drop
// (Last-Event-ID); the page's first connection resumes from the timeline
// entry the page was read at (?after=). Without JavaScript the page is
// complete as rendered; reloading shows the present.
"use strict";

(() => {
  const live = document.getElementById("run-live");
  if (!live || !window.EventSource) return;
  const status = document.getElementById("run-live-status");
  const say = (text, lost) => {
    if (status) status.textContent = text;
    live.classList.toggle("lost", !!lost);
  };
  const words = (s) => s.replaceAll("_", " ");

  // badge builds what the server's stateBadge writes.
  function badge(state, glyph) {
    const b = document.createElement("span");
    b.className = "badge s-" + state;
    const g = document.createElement("span");
    g.setAttribute("aria-hidden", "true");
    g.textContent = glyph;
    b.append(g, " " + words(state));
    return b;
  }

  function setStateClass(el, state) {
    for (const c of [...el.classList]) if (c.startsWith("s-")) el.classList.remove(c);
    el.classList.add("s-" + state);
  }

  function applyTask(t) {
    const node = document.getElementById("node-" + t.id);
    if (node) {
      setStateClass(node, t.state);
      const sub = node.querySelector("text.sub");
      if (sub) sub.textContent = t.sub;
      const label = t.id + " " + t.sub; // the text drawn, as the server writes it
      node.setAttribute("aria-label", label);
      const title = node.querySelector("title");
      if (title) title.textContent = label;
    }
    const row = document.getElementById("task-" + t.id);
    if (row) {
      const cell = row.querySelector(".tstate");
      if (cell) cell.replaceChildren(badge(t.state, t.glyph));
      const att = row.querySelector(".tattempt");
      if (att) att.textContent = String(t.attempt);
      const m = row.querySelector(".tmap");
      if (m && t.map) m.textContent = t.map;
    }
  }

  function applyGroup(id, g) {
    const node = document.getElementById("group-" + id);
    if (!node) return;
    setStateClass(node, g.class.replace(/^s-/, ""));
    const sub = node.querySelector("text.sub");
    if (sub) sub.textContent = g.sub;
    node.setAttribute("aria-label", g.title);
    const title = node.querySelector("title");
    if (title) title.textContent = g.title;
  }

  function applyRun(r) {
    const st = document.getElementById("run-state");
    if (st) st.replaceChildren(badge(r.state, glyphOf(r)));
    const rem = document.getElementById("run-remaining");
    if (rem) rem.textContent = String(r.remaining);
    const counts = document.getElementById("run-counts");
    if (counts && r.counts) {
      const base = location.pathname;
      counts.replaceChildren(...r.counts.map((c) => {
        const li = document.createElement("li");
        const a = document.createElement("a");
        a.className = "badge s-" + c.state;
        a.href = base + "?state=" + encodeURIComponent(c.state) + "#tasks";
        const g = document.createElement("span");
        g.setAttribute("aria-hidden", "true");
        g.textContent = c.glyph;
        a.append(g, " " + c.n + " " + c.state);
        li.append(a);
        return li;
      }));
    }
    if (r.actions) {
      setButton("act-cancel", "why-cancel", r.actions.cancel, r.actions.cancel_why);
      setButton("act-retry", "why-retry", r.actions.retry, r.actions.retry_why);
    }
    // The run's end: when it finished (the page was read before), and no
    // "cancelling" any more.
    const fin = document.getElementById("run-finished");
    if (fin && r.finished_at && !fin.querySelector("time")) {
      const t = document.createElement("time");
      t.setAttribute("datetime", r.finished_at);
      t.textContent = r.finished_at;
      fin.replaceChildren(t);
      tasuki.localize(fin);
    }
    if (r.ended) document.getElementById("run-cancelling")?.remove();
  }

  // glyphOf is a run state's glyph, as format.go's glyph gives it.
  function glyphOf(r) {
    return { succeeded: "✓", failed: "✗", running: "◐", queued: "○", cancelled: "■" }[r.state] || "•";
  }

  function setButton(id, whyID, enabled, why) {
    const b = document.getElementById(id), w = document.getElementById(whyID);
    if (!b) return;
    // A role that may not act keeps its reason; the server sends it too.
    b.disabled = !enabled;
    if (enabled) b.removeAttribute("aria-describedby"); else b.setAttribute("aria-describedby", whyID);
    if (w) w.textContent = why || "";
  }

  const es = new EventSource(live.dataset.liveUrl);
  es.addEventListener("open", () => say("This page follows the run as it goes."));
  es.addEventListener("change", (e) => {
    let ev;
    try { ev = JSON.parse(e.data); } catch { return; }
    for (const t of ev.tasks || []) applyTask(t);
    for (const [id, g] of Object.entries(ev.groups || {})) applyGroup(id, g);
    if (ev.run) applyRun(ev.run);
    live.dataset.lastEventId = e.lastEventId || "";
    live.dataset.applied = String(Date.now());
    document.dispatchEvent(new CustomEvent("tasuki:live", { detail: ev }));
  });
  es.addEventListener("end", () => {
    es.close();
    say("The run has ended.");
    const reload = document.getElementById("run-reload");
    if (reload) reload.hidden = false;
    live.dataset.ended = "1";
    document.dispatchEvent(new CustomEvent("tasuki:live-end"));
  });
  es.addEventListener("error", () => {
    if (es.readyState === EventSource.CLOSED) say("Live updates stopped; reload the page.", true);
    else say("Connection lost; reconnecting…", true);
  });
})();
