// tasuki web UI: the log viewer of the task page. The page comes with the
// log's tail (or the part around a search match) already in <pre id="log">,
// with its byte offsets in data-start/data-end. This script reads more by
// Range requests to the API's log route (data-src), never the whole log:
// "Load earlier" prepends the 256 KiB before what is shown; a match of a
// search opens the 256 KiB around it; a running attempt is followed over
// the same route's Server-Sent Events, whose event ids are byte offsets,
// so a dropped connection resumes exactly where it was. Text is put in the
// page as text nodes, never as HTML.
"use strict";

(() => {
  const WINDOW = 256 * 1024, BEFORE = 32 * 1024;
  // The most text the viewer keeps while following; older text is dropped
  // from the top (and can be loaded again).
  const KEEP = 8 * 1024 * 1024;

  const pre = document.getElementById("log");
  if (!pre) return;
  const src = pre.dataset.src;
  let start = Number(pre.dataset.start), end = Number(pre.dataset.end), size = Number(pre.dataset.size);
  let follow = null; // the EventSource while following
  let kept = []; // [{nodes, bytes}] in order, for dropping the oldest while following
  const status = document.getElementById("log-status");
  const utf8 = new TextDecoder("utf-8");

  function say(text) { if (status) status.textContent = text; }
  function where() {
    let s = size === 0 ? "The log is empty" : `Showing bytes ${start}–${end} of ${size}`;
    if (follow) s += " · following the running attempt";
    return s;
  }

  // fetchRange reads bytes [from, to) of the log; it resolves to the bytes
  // and the log's total size from Content-Range.
  async function fetchRange(from, to) {
    const res = await fetch(src, { headers: { Range: `bytes=${from}-${to - 1}` }, credentials: "same-origin" });
    if (res.status === 401) { location.assign("/login?next=" + encodeURIComponent(location.pathname + location.search)); throw new Error("log in again"); }
    if (!res.ok) {
      let msg = `${res.status} ${res.statusText}`;
      try { msg = (await res.json()).error.message; } catch { /* not JSON */ }
      throw new Error(msg);
    }
    const total = Number((res.headers.get("Content-Range") || "").split("/")[1]);
    return { bytes: new Uint8Array(await res.arrayBuffer()), total: isNaN(total) ? size : total };
  }

  // wholeLines cuts a range to whole lines: after the first newline unless
  // it starts the log, up to the last unless it ends it.
  function wholeLines(bytes, from, atStart, atEnd) {
    let a = 0, b = bytes.length;
    if (!atStart) { const i = bytes.indexOf(10); if (i >= 0 && i + 1 < b) a = i + 1; }
    if (!atEnd) { const i = bytes.lastIndexOf(10); if (i >= a) b = i + 1; }
    return { bytes: bytes.subarray(a, b), from: from + a, to: from + b };
  }

  function setEdges() {
    pre.dataset.start = start; pre.dataset.end = end; pre.dataset.size = size;
    const earlier = document.getElementById("log-earlier");
    if (earlier) earlier.hidden = start === 0;
    say(where());
  }

  async function loadEarlier(btn) {
    if (start === 0) return;
    btn.setAttribute("aria-busy", "true");
    try {
      const from = Math.max(0, start - WINDOW);
      const got = await fetchRange(from, start);
      const part = wholeLines(got.bytes, from, from === 0, true);
      const node = document.createTextNode(utf8.decode(part.bytes));
      const before = pre.scrollHeight;
      pre.insertBefore(node, pre.firstChild);
      kept.unshift({ nodes: [node], bytes: part.to - part.from });
      pre.scrollTop += pre.scrollHeight - before; // keep the reader's place
      start = part.from;
      setEdges();
    } catch (err) {
      tasuki.toast("Could not load the earlier log: " + err.message, true);
    } finally {
      btn.removeAttribute("aria-busy");
    }
  }

  // openAt shows the lines around byte offset at, the line holding it
  // marked, as the page's ?at= does.
  async function openAt(at) {
    try {
      const from = Math.max(0, at - BEFORE);
      const got = await fetchRange(from, from + WINDOW);
      size = got.total;
      const to = from + got.bytes.length;
      const part = wholeLines(got.bytes, from, from === 0, to >= size);
      const off = at - part.from;
      const b = part.bytes;
      let ls = off > 0 ? b.lastIndexOf(10, off - 1) + 1 : 0;
      let le = b.indexOf(10, off);
      if (le < 0) le = b.length;
      stopFollowing();
      pre.textContent = "";
      const mark = document.createElement("mark");
      mark.className = "hit-current";
      mark.id = "log-hit";
      mark.textContent = utf8.decode(b.subarray(ls, le));
      pre.append(utf8.decode(b.subarray(0, ls)), mark, utf8.decode(b.subarray(le)));
      kept = [{ nodes: [...pre.childNodes], bytes: part.to - part.from }];
      start = part.from; end = part.to;
      if (end >= size && pre.dataset.live && window.EventSource) startFollowing();
      const tail = document.getElementById("log-tail");
      if (tail) tail.hidden = end >= size;
      setEdges();
      mark.scrollIntoView({ block: "center" });
      const u = new URL(location.href);
      // A link to share: the attempt (and item) shown, at the match.
      for (const [k, v] of new URL(src, location.href).searchParams) u.searchParams.set(k, v);
      u.searchParams.set("at", at);
      u.hash = "log";
      history.replaceState(null, "", u);
    } catch (err) {
      tasuki.toast("Could not open the log there: " + err.message, true);
    }
  }

  function atBottom() { return pre.scrollHeight - pre.scrollTop - pre.clientHeight < 8; }

  function append(text, bytes) {
    const stick = atBottom();
    const node = document.createTextNode(text);
    pre.append(node);
    kept.push({ nodes: [node], bytes });
    let total = kept.reduce((n, k) => n + k.bytes, 0);
    while (total > KEEP && kept.length > 1) {
      const k = kept.shift();
      for (const n of k.nodes) n.remove();
      total -= k.bytes;
      start += k.bytes;
    }
    if (stick) pre.scrollTop = pre.scrollHeight;
  }

  function startFollowing() {
    const es = new EventSource(`${src}&follow=1&offset=${end}`);
    follow = es;
    es.onmessage = (e) => {
      const next = Number(e.lastEventId);
      const bytes = isNaN(next) ? 0 : next - end;
      if (!isNaN(next)) end = next;
      size = Math.max(size, end);
      append(e.data + "\n", bytes);
      setEdges();
    };
    es.addEventListener("end", () => {
      stopFollowing();
      delete pre.dataset.live;
      say(where() + " · the attempt has ended");
      tasuki.toast("The attempt has ended; reload the page for its outcome.");
    });
    es.addEventListener("error", (e) => {
      if (e.data) { // the server's own error event, not a dropped connection
        stopFollowing();
        tasuki.toast("Following the log failed; reload to try again.", true);
      }
    });
    setEdges();
  }

  function stopFollowing() {
    if (follow) { follow.close(); follow = null; }
  }

  // search fetches one page of a search as a fragment and puts it in the
  // results; it resolves to the fragment's element.
  async function searchPage(url, into, replace) {
    const res = await fetch(url, { headers: { "HX-Request": "true" }, credentials: "same-origin" });
    const text = await res.text();
    const box = document.createElement("div");
    box.innerHTML = text; // the server's HTML (escaped by html/template), as htmx would swap it
    if (replace) { replace.replaceWith(...box.childNodes); } else { into.replaceChildren(...box.childNodes); }
    if (window.htmx) htmx.process(into);
    if (!res.ok) throw new Error(box.textContent.trim() || res.statusText);
  }

  // jumpToError searches for the first error line, request after request
  // (each reads a bounded part of the log), and opens the log there.
  async function jumpToError(link) {
    const hits = document.getElementById("log-hits");
    const form = document.getElementById("log-search");
    if (!hits || !form) { location.assign(link.href); return; }
    const q = new URLSearchParams(new FormData(form));
    q.delete("q");
    q.set("find", "errors");
    let url = form.getAttribute("hx-get") + "?" + q.toString();
    link.setAttribute("aria-busy", "true");
    try {
      await searchPage(url, hits, null);
      for (;;) {
        const first = hits.querySelector("a[data-at]");
        if (first) { await openAt(Number(first.dataset.at)); return; }
        const more = hits.querySelector("a[data-more]");
        if (!more) { say(where() + " · no error line in the log"); return; }
        await searchPage(more.dataset.more, hits, more.closest(".hits-more"));
      }
    } catch (err) {
      tasuki.toast(err.message, true);
    } finally {
      link.removeAttribute("aria-busy");
    }
  }

  document.addEventListener("click", (e) => {
    if (e.button !== 0 || e.ctrlKey || e.metaKey || e.shiftKey || e.altKey) return; // new tab: the real link
    const hit = e.target.closest("#log-hits a[data-at]");
    if (hit) { e.preventDefault(); openAt(Number(hit.dataset.at)); return; }
    const earlier = e.target.closest("#log-earlier");
    if (earlier) { e.preventDefault(); loadEarlier(earlier); return; }
    const jump = e.target.closest("#log-first-error");
    if (jump) { e.preventDefault(); jumpToError(jump); }
  });

  kept = [{ nodes: [...pre.childNodes], bytes: end - start }];
  const hit = document.getElementById("log-hit");
  if (hit) { hit.scrollIntoView({ block: "center" }); } else { pre.scrollTop = pre.scrollHeight; }
  if (pre.dataset.live && window.EventSource) startFollowing();
  window.addEventListener("pagehide", stopFollowing);
})();
