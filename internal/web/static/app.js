// tasuki web UI: what every page needs. Pages are rendered by the server;
// this script localizes times, logs in and out, and sends the actions a
// page offers to the JSON API with the session's CSRF token. No inline
// script anywhere: the Content-Security-Policy forbids it.
"use strict";

const tasuki = (() => {
  const csrf = () => document.querySelector('meta[name="csrf-token"]')?.content || "";

  // api calls the JSON API. It resolves to the decoded answer, or rejects
  // with an Error whose message is the API's, and .status, .code set.
  async function api(method, path, body) {
    const init = { method, headers: { "Accept": "application/json" }, credentials: "same-origin" };
    if (method !== "GET" && method !== "HEAD") {
      init.headers["X-Tasuki-Csrf"] = csrf();
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body ?? {});
    }
    const res = await fetch("/api/v1" + path, init);
    let data = null;
    const text = await res.text();
    if (text) { try { data = JSON.parse(text); } catch { data = null; } }
    if (!res.ok) {
      const err = new Error(data?.error?.message || `${res.status} ${res.statusText}`);
      err.status = res.status;
      err.code = data?.error?.code || "";
      err.params = data?.error?.params || []; // invalid_params: each parameter's problem
      if (res.status === 401 && path !== "/login") {
        location.assign("/login?next=" + encodeURIComponent(location.pathname + location.search));
      }
      throw err;
    }
    return data;
  }

  function toast(msg, isError) {
    const t = document.getElementById("toast");
    if (!t) return;
    t.textContent = msg;
    t.classList.toggle("error", !!isError);
    clearTimeout(toast.timer);
    toast.timer = setTimeout(() => { t.textContent = ""; }, 8000);
  }

  // Times come from the server in UTC; people read their own zone. The
  // title keeps the exact instant (and the pipeline's zone when given).
  const fmt = new Intl.DateTimeFormat(undefined, {
    year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit", second: "2-digit", timeZoneName: "short",
  });
  function localize(root) {
    for (const el of (root || document).querySelectorAll("time[datetime]:not([data-local])")) {
      const d = new Date(el.getAttribute("datetime"));
      if (!isNaN(d)) { el.textContent = fmt.format(d); el.dataset.local = "1"; }
    }
  }

  function login(form) {
    form.addEventListener("submit", async (e) => {
      e.preventDefault();
      const out = document.getElementById("login-error");
      out.hidden = true;
      const user = form.elements.user.value.trim(), password = form.elements.password.value;
      if (!user || !password) { out.textContent = "Give your user name and password."; out.hidden = false; return; }
      try {
        await api("POST", "/login", { user, password });
        location.assign(form.dataset.next || "/");
      } catch (err) {
        out.textContent = err.message;
        out.hidden = false;
      }
    });
  }

  // Buttons with data-action="METHOD PATH" send it to the API, after a
  // confirmation when data-confirm says so; data-body is its JSON body;
  // data-then says what follows: "reload" (default) or "run" (open the
  // run the answer names).
  async function act(btn) {
    const [method, path] = btn.dataset.action.split(" ");
    if (btn.dataset.confirm && !window.confirm(btn.dataset.confirm)) return;
    btn.disabled = true;
    try {
      const body = btn.dataset.body ? JSON.parse(btn.dataset.body) : {};
      const res = await api(method, path, body);
      if (btn.dataset.then === "run" && res?.id) { location.assign("/runs/" + res.id); return; }
      toast(btn.dataset.done || "Done.");
      setTimeout(() => location.reload(), 300);
    } catch (err) {
      toast(err.message, true);
      btn.disabled = false;
    }
  }

  document.addEventListener("click", (e) => {
    const btn = e.target.closest("button[data-action]");
    if (btn && !btn.disabled) { e.preventDefault(); act(btn); return; }
    if (e.target.closest("button[data-logout]")) {
      e.preventDefault();
      api("POST", "/logout").catch(() => {}).finally(() => location.assign("/login"));
    }
  });

  document.addEventListener("DOMContentLoaded", () => {
    localize();
    const f = document.getElementById("login");
    if (f) login(f);
  });
  document.addEventListener("htmx:afterSwap", (e) => localize(e.target));
  document.addEventListener("htmx:configRequest", (e) => { e.detail.headers["X-Tasuki-Csrf"] = csrf(); });

  return { api, toast, localize, csrf };
})();
