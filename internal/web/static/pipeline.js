// tasuki web UI: the pipeline page's forms. The trigger form posts the
// declared parameters, as typed JSON values, to the API and opens the new
// run; the backfill form posts a range given in the pipeline's time zone.
// An invalid_params error is shown beside the field of each parameter it
// names, anything else at the form. Needs app.js (tasuki.api).
"use strict";

(() => {
  // value reads a parameter's field as the JSON value of its type;
  // undefined for an empty field (the parameter's default applies).
  function value(el) {
    const raw = el.value.trim();
    if (raw === "") return undefined;
    switch (el.dataset.type) {
      case "int": {
        const n = Number(raw);
        // Past 2^53 a JSON number loses digits: send the text, which the
        // server reads the same way.
        return Number.isSafeInteger(n) ? n : raw;
      }
      case "float": {
        const n = Number(raw);
        return Number.isFinite(n) ? n : raw;
      }
      case "bool":
        return raw === "true" ? true : raw === "false" ? false : raw;
      case "list":
        if (raw.startsWith("[")) {
          try { const a = JSON.parse(raw); if (Array.isArray(a)) return a; } catch { /* the server says what is wrong */ }
          return raw;
        }
        return raw.split(",").map((s) => s.trim()).filter((s) => s !== "");
    }
    return el.value; // strings as typed, spaces kept
  }

  function params(form) {
    const out = {};
    for (const el of form.querySelectorAll("[data-param]")) {
      const v = value(el);
      if (v !== undefined) out[el.dataset.param] = v;
    }
    return out;
  }

  function clearErrors(form) {
    for (const p of form.querySelectorAll(".field-error")) { p.hidden = true; p.textContent = ""; }
    for (const el of form.querySelectorAll("[aria-invalid]")) el.removeAttribute("aria-invalid");
    const top = form.querySelector("p.error[role=alert]");
    if (top) { top.hidden = true; top.textContent = ""; }
  }

  // fieldError shows msg beside the field of name; false if there is none.
  function fieldError(form, name, msg) {
    const out = [...form.querySelectorAll(".field-error")].find((p) => p.dataset.errorFor === name);
    if (!out) return false;
    out.textContent = msg;
    out.hidden = false;
    const input = form.querySelector(`[aria-describedby~="${out.id}"]`);
    if (input) input.setAttribute("aria-invalid", "true");
    return true;
  }

  function formError(form, msg) {
    const top = form.querySelector("p.error[role=alert]");
    top.textContent = msg;
    top.hidden = false;
  }

  // showError puts each parameter's problem beside its field and what is
  // left at the form; the first field at fault gets the focus.
  function showError(form, err) {
    let rest = [];
    if (err.code === "invalid_params" && err.params?.length) {
      for (const p of err.params) {
        if (!fieldError(form, p.param, p.message)) rest.push(p.message);
      }
    } else {
      rest.push(err.message);
    }
    if (rest.length) formError(form, rest.join("\n"));
    const bad = form.querySelector("[aria-invalid=true]");
    (bad || form.querySelector("p.error[role=alert]")).focus?.();
  }

  function trigger(form) {
    form.addEventListener("submit", async (e) => {
      e.preventDefault();
      clearErrors(form);
      const btn = form.querySelector("button[type=submit]");
      btn.disabled = true;
      try {
        const run = await tasuki.api("POST", "/pipelines/" + encodeURIComponent(form.dataset.pipeline) + "/runs", { params: params(form) });
        location.assign("/runs/" + run.id);
      } catch (err) {
        showError(form, err);
        btn.disabled = false;
      }
    });
  }

  // offset is how far the wall clock of zone is ahead of UTC at instant ms.
  function offset(ms, zone) {
    const parts = new Intl.DateTimeFormat("en-US", {
      timeZone: zone, hourCycle: "h23", year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit", second: "2-digit",
    }).formatToParts(new Date(ms));
    const n = (t) => Number(parts.find((p) => p.type === t).value);
    return Date.UTC(n("year"), n("month") - 1, n("day"), n("hour"), n("minute"), n("second")) - Math.floor(ms / 1000) * 1000;
  }

  // instant reads a datetime-local value as a wall time in zone and
  // returns it in RFC 3339 (UTC); "" for an empty or malformed value.
  function instant(local, zone) {
    const m = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})(?::(\d{2}))?$/.exec(local);
    if (!m) return "";
    const wall = Date.UTC(+m[1], +m[2] - 1, +m[3], +m[4], +m[5], +(m[6] || 0));
    let t = wall - offset(wall, zone);
    t = wall - offset(t, zone); // once more, across a change of offset
    return new Date(t).toISOString().replace(".000Z", "Z");
  }

  function backfill(form) {
    form.addEventListener("submit", async (e) => {
      e.preventDefault();
      clearErrors(form);
      const zone = form.dataset.zone || "UTC";
      const from = instant(form.elements.from.value, zone), to = instant(form.elements.to.value, zone);
      let bad = false;
      if (!from) bad = fieldError(form, "from", "Give the start of the range.") || true;
      if (!to) bad = fieldError(form, "to", "Give the end of the range.") || true;
      if (bad) { form.querySelector("[aria-invalid=true]")?.focus(); return; }
      const parallel = Number(form.elements.parallel.value || "1");
      const body = { pipeline: form.dataset.pipeline, from, to, parallel, params: params(form) };
      const msg = `Create a backfill of ${form.dataset.pipeline} from ${form.elements.from.value} to ${form.elements.to.value} (${zone}), ${parallel} run(s) at once?`;
      if (!window.confirm(msg)) return;
      const btn = form.querySelector("button[type=submit]");
      btn.disabled = true;
      try {
        const b = await tasuki.api("POST", "/backfills", body);
        tasuki.toast(`Backfill ${b.id} created: ${b.runs} run(s).`);
        setTimeout(() => location.reload(), 600);
      } catch (err) {
        showError(form, err);
        btn.disabled = false;
      }
    });
  }

  document.addEventListener("DOMContentLoaded", () => {
    const t = document.getElementById("trigger-form");
    if (t) trigger(t);
    const b = document.getElementById("backfill-form");
    if (b) backfill(b);
  });
})();
