// The status page's script: polls /stats, keeps the last minutes of
// samples, and updates the page in place (rates and latency quantiles
// are computed here from successive counter values). With actions on,
// buttons POST to /api/action with the CSRF token of the page and the
// operator's token (kept in sessionStorage, for this tab only).
"use strict";
(function () {
  const params = new URLSearchParams(location.search);
  const POLL_MS = Math.min(60000, Math.max(250, Number(params.get("interval")) || 1000));
  const WINDOW_MS = 10000;      // rates and quantiles over this much
  const KEEP_MS = 5 * 60000;    // chart: the last five minutes
  const TOKEN_KEY = "ktcpvs-admin-token";
  const meta = (n) => document.querySelector(`meta[name="${n}"]`).content;
  const actionsOn = meta("ktcpvs-actions") === "on";
  const csrf = meta("ktcpvs-csrf");
  const $ = (id) => document.getElementById(id);
  let samples = [];             // {t, stats}
  let shape = "";

  function el(tag, attrs, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === "class") e.className = v;
      else if (k.startsWith("data-") || k.startsWith("aria-") || k === "role" || k === "scope" || k === "type" || k === "title") e.setAttribute(k, v);
      else e[k] = v;
    }
    for (const c of children) e.append(c);
    return e;
  }

  // --- formatting ---
  const fmtRate = (v) => v == null ? "–" : v < 10 ? v.toFixed(2) : v < 1000 ? v.toFixed(1) : v.toFixed(0);
  function fmtSecs(s) {
    if (s == null || !isFinite(s)) return "–";
    if (s < 0.001) return (s * 1e6).toFixed(0) + " µs";
    if (s < 1) return (s * 1e3).toFixed(1) + " ms";
    return s.toFixed(2) + " s";
  }
  function fmtAge(s) {
    if (s == null) return "never";
    s = Math.floor(s);
    if (s < 120) return s + " s";
    if (s < 7200) return Math.floor(s / 60) + " min";
    if (s < 172800) return Math.floor(s / 3600) + " h";
    return Math.floor(s / 86400) + " d";
  }
  function fmtBytes(n) {
    const u = ["B", "KiB", "MiB", "GiB", "TiB"];
    let i = 0;
    while (n >= 1024 && i < u.length - 1) { n /= 1024; i++; }
    return (i ? n.toFixed(1) : String(n)) + " " + u[i];
  }
  const pct = (a, b) => b > 0 ? (100 * a / b).toFixed(1) + " %" : "–";

  // --- figures over the window ---
  function baseline(now) {
    for (const s of samples) if (now.t - s.t <= WINDOW_MS + POLL_MS / 2) return s;
    return samples[samples.length - 1];
  }
  function quantile(hist, old, bounds, q) {
    const cum = hist.cumulative.map((c, i) => c - (old ? old.cumulative[i] : 0));
    const total = cum[cum.length - 1];
    if (!(total > 0)) return null;
    const want = q * total;
    for (let i = 0; i < cum.length; i++) {
      if (cum[i] >= want) {
        const lo = i ? bounds[i - 1] : 0, hi = i < bounds.length ? bounds[i] : bounds[bounds.length - 1];
        const below = i ? cum[i - 1] : 0, inside = cum[i] - below;
        return inside > 0 ? lo + (hi - lo) * (want - below) / inside : hi;
      }
    }
    return null;
  }
  function rates(cur, old, dt, bounds) {
    if (!old || dt <= 0) return { rps: null, eps: null, err: null, p50: null, p99: null };
    const dr = cur.requests - old.requests, de = cur.errors - old.errors;
    const lat = cur.latency.exchange, olat = old.latency.exchange;
    return {
      rps: Math.max(0, dr) / dt, eps: Math.max(0, de) / dt, err: pct(de, dr),
      p50: quantile(lat, olat, bounds, 0.5), p99: quantile(lat, olat, bounds, 0.99),
    };
  }

  // --- building the page (only when services, rules or servers change) ---
  function shapeOf(stats) {
    return JSON.stringify(stats.services.map((s) => [s.name, s.rules.map((r) => r.pattern + r.conditions), s.servers.map((r) => r.address)]));
  }
  function figure(dl, key, label) {
    dl.append(el("div", {}, el("dt", {}, label), el("dd", { "data-f": key }, "–")));
  }
  function serviceCard(s) {
    const card = el("section", { class: "svc", "data-service": s.name, "aria-label": "service " + s.name });
    const head = el("div", { class: "svc-head" },
      el("h2", {}, s.name), el("span", { class: "badge", "data-f": "state" }, "…"),
      el("span", { class: "meta mono" }, "listen " + s.listen.join(", ")),
      el("span", { class: "meta" }, "scheduler " + s.scheduler));
    if (actionsOn) {
      head.append(el("span", { class: "acts" },
        button("Start", "start service " + s.name, { action: "start", service: s.name }),
        button("Stop", "stop service " + s.name, { action: "stop", service: s.name })));
    }
    const figs = el("dl", { class: "figures" });
    [["rps", "req/s"], ["eps", "errors/s"], ["err", "error %"], ["active", "active"],
     ["p50", "p50"], ["p99", "p99"], ["queued", "queued"], ["total", "requests"]].forEach(([k, l]) => figure(figs, k, l));
    const canvas = el("canvas", { class: "chart", role: "img", "aria-label": "request rate and p99 latency of " + s.name + " over the last minutes" });
    const chart = el("div", {}, canvas, el("div", { class: "legend" },
      el("span", { class: "rate" }, "requests/s "), el("span", { class: "lat" }, "p99 latency "),
      el("span", { "data-f": "scale" }, "")));
    card.append(head, el("div", { class: "svc-body" }, figs, chart));
    if (s.rules.length) card.append(el("h3", {}, "Rules"), el("div", { class: "scroll" }, rulesTable(s)));
    card.append(el("h3", {}, "Real servers"), el("div", { class: "scroll" }, serversTable(s)));
    return card;
  }
  function table(cols) {
    const t = el("table");
    const cg = el("colgroup");
    const tr = el("tr");
    for (const [label, width, num] of cols) {
      cg.append(el("col"));
      cg.lastChild.style.width = width;
      tr.append(el("th", { scope: "col", class: num ? "num" : "" }, label));
    }
    t.append(cg, el("thead", {}, tr), el("tbody"));
    return t;
  }
  function rulesTable(s) {
    const t = table([["#", "2.5rem"], ["Pattern", "12rem"], ["Conditions", "12rem"], ["Goes to", "14rem"], ["Hits", "6rem", 1], ["Share", "9rem", 1]]);
    for (const r of s.rules) {
      const goes = r.action || r.servers.join(", ");
      t.tBodies[0].append(el("tr", { "data-rule": String(r.index) },
        el("td", {}, String(r.index)), el("td", { class: "mono wrap" }, r.pattern),
        el("td", { class: "mono wrap" }, r.conditions || "—"), el("td", { class: "mono wrap" }, goes),
        el("td", { class: "num", "data-f": "hits" }, "0"),
        el("td", { class: "num" }, el("span", { class: "share", "data-f": "bar" }), el("span", { "data-f": "share" }, "–"))));
    }
    return t;
  }
  function serversTable(s) {
    const cols = [["Server", "10.5rem"], ["State", "9rem"], ["Weight", "4.5rem", 1], ["Effective", "5.5rem", 1],
      ["Since", "4.5rem", 1], ["Last failure", "12rem"], ["Active", "5.5rem", 1], ["req/s", "5rem", 1],
      ["err/s", "4.5rem", 1], ["p50 / p99", "9rem", 1], ["In / out", "10rem", 1]];
    if (actionsOn) cols.push(["Actions", "15rem"]);
    const t = table(cols);
    for (const r of s.servers) {
      const row = el("tr", { "data-server": r.address },
        el("td", { class: "mono" }, r.address), el("td", {}, el("span", { class: "badge", "data-f": "state" }, "…")));
      for (const k of ["weight", "eff", "since", "reason", "active", "rps", "eps", "lat", "bytes"]) {
        row.append(el("td", { class: k === "reason" ? "wrap" : "num", "data-f": k }, "–"));
      }
      if (actionsOn) row.append(el("td", {}, serverActions(s.name, r.address)));
      t.tBodies[0].append(row);
    }
    return t;
  }
  function serverActions(service, server) {
    const input = el("input", { type: "number", min: 0, max: 65535, "aria-label": "new weight of " + server, "data-f": "weight-input" });
    const set = el("button", { type: "button", "data-act": "weight" }, "Set");
    set.addEventListener("click", () => {
      const w = Number(input.value);
      if (input.value === "" || !Number.isInteger(w) || w < 0) { notice("a weight is a whole number, 0 or more", true); input.focus(); return; }
      act({ action: "weight", service, server, weight: w });
    });
    input.addEventListener("keydown", (e) => { if (e.key === "Enter") set.click(); });
    return el("span", { class: "acts" }, input, set,
      button("Drain", "drain " + server + " (weight 0)", { action: "drain", service, server }),
      button("Enable", "enable " + server, { action: "enable", service, server }));
  }
  function button(label, title, body) {
    const b = el("button", { type: "button", title, "data-act": body.action }, label);
    b.addEventListener("click", () => act(body));
    return b;
  }
  function build(stats) {
    const main = $("services");
    main.replaceChildren(...stats.services.map(serviceCard));
    if (!stats.services.length) main.append(el("p", { class: "muted" }, "No virtual service is configured."));
  }

  // --- updating in place ---
  function set(scope, key, text) {
    const e = scope.querySelector(`[data-f="${key}"]`);
    if (e && e.textContent !== text) e.textContent = text;
    return e;
  }
  function badge(e, cls, text) {
    if (!e) return;
    e.className = "badge " + cls;
    if (e.textContent !== text) e.textContent = text;
  }
  function serverState(r) {
    if (r.state === "down") return ["bad", "✖ down"];
    if (r.state === "ejected") return ["bad", "⚠ ejected"];
    if (r.state === "open") return ["warn", "◐ down, let in"];
    if (r.weight === 0) return r.active > 0 ? ["warn", "⇣ draining"] : ["idle", "⏸ quiesced"];
    if (r.ramping) return ["ok", "↗ up, ramping"];
    return ["ok", "✔ up"];
  }
  function update(stats, old, dt) {
    const bounds = stats.latency_bounds_seconds;
    badge($("node-state"), stats.draining ? "warn" : "ok", stats.draining ? "⇣ draining" : "✔ serving");
    $("uptime").textContent = fmtAge(stats.uptime_seconds);
    $("workers").textContent = String(stats.workers.length);
    $("config-hash").textContent = stats.config_hash;
    $("updated").textContent = new Date().toLocaleTimeString();
    for (const s of stats.services) {
      const card = document.querySelector(`section[data-service="${CSS.escape(s.name)}"]`);
      if (!card) continue;
      const os = old && old.services.find((o) => o.name === s.name);
      const f = rates(s, os, dt, bounds);
      const figs = card.querySelector(".figures");
      badge(set(card.querySelector(".svc-head"), "state", ""), s.running ? "ok" : "idle", s.running ? "▶ running" : "■ stopped");
      set(figs, "rps", fmtRate(f.rps)); set(figs, "eps", fmtRate(f.eps)); set(figs, "err", f.err || "–");
      set(figs, "p50", fmtSecs(f.p50)); set(figs, "p99", fmtSecs(f.p99));
      set(figs, "active", String(s.active)); set(figs, "queued", String(s.queued)); set(figs, "total", String(s.requests));
      const hits = s.rules.reduce((a, r) => a + r.requests, 0);
      for (const r of s.rules) {
        const row = card.querySelector(`tr[data-rule="${r.index}"]`);
        if (!row) continue;
        set(row, "hits", String(r.requests));
        set(row, "share", pct(r.requests, hits));
        row.querySelector('[data-f="bar"]').style.width = (hits ? 4 * r.requests / hits : 0) + "rem";
      }
      for (const r of s.servers) updateServer(card, r, os && os.servers.find((o) => o.address === r.address), dt, bounds);
    }
    drawCharts(stats);
    const log = stats.admin_actions || [];
    $("actions-log").hidden = !log.length;
    $("log").replaceChildren(...log.slice().reverse().map((a) => el("li", { class: a.ok ? "" : "failed" },
      new Date(a.unix_time * 1000).toLocaleTimeString() + "  " + a.request + (a.ok ? "  ✔ done" : "  ✖ " + a.message))));
  }
  function updateServer(card, r, or, dt, bounds) {
    const row = card.querySelector(`tr[data-server="${CSS.escape(r.address)}"]`);
    if (!row) return;
    const [cls, text] = serverState(r);
    badge(set(row, "state", ""), cls, text);
    row.className = cls === "bad" ? "bad" : cls === "warn" || cls === "idle" ? "warn" : "";
    const f = rates(r, or, dt, bounds);
    set(row, "weight", String(r.weight));
    set(row, "eff", Number.isInteger(r.effective_weight) ? String(r.effective_weight) : r.effective_weight.toFixed(1));
    set(row, "since", r.since_change_seconds == null ? "–" : fmtAge(r.since_change_seconds));
    const reason = set(row, "reason", r.reason || "—");
    if (reason) reason.title = r.reason || "";
    set(row, "active", r.maxconn ? r.active + " / " + r.maxconn : String(r.active));
    set(row, "rps", fmtRate(f.rps)); set(row, "eps", fmtRate(f.eps));
    set(row, "lat", fmtSecs(f.p50) + " / " + fmtSecs(f.p99));
    set(row, "bytes", fmtBytes(r.bytes_in) + " / " + fmtBytes(r.bytes_out));
  }

  // --- charts: request rate (solid) and p99 (dashed), last minutes ---
  function series(name) {
    const out = [];
    for (let i = 1; i < samples.length; i++) {
      const a = samples[i - 1], b = samples[i];
      const sa = a.stats.services.find((s) => s.name === name), sb = b.stats.services.find((s) => s.name === name);
      if (!sa || !sb) continue;
      const f = rates(sb, sa, (b.t - a.t) / 1000, b.stats.latency_bounds_seconds);
      out.push({ t: b.t, rps: f.rps || 0, p99: f.p99 });
    }
    return out;
  }
  function drawCharts(stats) {
    const style = getComputedStyle(document.documentElement);
    const colours = { rate: style.getPropertyValue("--rate"), lat: style.getPropertyValue("--lat"), line: style.getPropertyValue("--line") };
    for (const s of stats.services) {
      const card = document.querySelector(`section[data-service="${CSS.escape(s.name)}"]`);
      const canvas = card && card.querySelector("canvas");
      if (!canvas) continue;
      const pts = series(s.name);
      const maxR = Math.max(1, ...pts.map((p) => p.rps));
      const maxL = Math.max(0.001, ...pts.map((p) => p.p99 || 0));
      set(card, "scale", "· top: " + fmtRate(maxR) + " req/s, " + fmtSecs(maxL));
      draw(canvas, pts, maxR, maxL, colours);
    }
  }
  function draw(canvas, pts, maxR, maxL, colours) {
    const dpr = window.devicePixelRatio || 1;
    const w = canvas.clientWidth, h = canvas.clientHeight;
    if (!w || !h) return;
    if (canvas.width !== Math.round(w * dpr)) { canvas.width = Math.round(w * dpr); canvas.height = Math.round(h * dpr); }
    const g = canvas.getContext("2d");
    g.setTransform(dpr, 0, 0, dpr, 0, 0);
    g.clearRect(0, 0, w, h);
    g.strokeStyle = colours.line; g.lineWidth = 1; g.setLineDash([]);
    for (const y of [0.25, 0.5, 0.75]) { g.beginPath(); g.moveTo(0, h * y); g.lineTo(w, h * y); g.stroke(); }
    const now = Date.now();
    // The last minute at least, the last five at most.
    const span = Math.min(KEEP_MS, Math.max(60000, pts.length ? now - pts[0].t : 0));
    const x = (t) => w - (now - t) / span * w;
    const line = (pick, max, colour, dash) => {
      g.strokeStyle = colour; g.lineWidth = 2; g.setLineDash(dash); g.beginPath();
      let started = false;
      for (const p of pts) {
        const v = pick(p);
        if (v == null) { started = false; continue; }
        const px = x(p.t), py = h - 3 - (h - 6) * v / max;
        if (started) g.lineTo(px, py); else { g.moveTo(px, py); started = true; }
      }
      g.stroke();
    };
    line((p) => p.rps, maxR, colours.rate, []);
    line((p) => p.p99, maxL, colours.lat, [5, 4]);
  }

  // --- polling ---
  async function poll() {
    try {
      const r = await fetch("stats", { cache: "no-store" });
      if (!r.ok) throw new Error("/stats answered " + r.status);
      const stats = await r.json();
      const now = { t: Date.now(), stats };
      const sh = shapeOf(stats);
      if (sh !== shape) { shape = sh; build(stats); }
      const old = samples.length ? baseline(now) : null;
      samples.push(now);
      while (samples.length && now.t - samples[0].t > KEEP_MS) samples.shift();
      update(stats, old && old.stats, old ? (now.t - old.t) / 1000 : 0);
      document.body.dataset.polls = String(Number(document.body.dataset.polls || 0) + 1);
    } catch (e) {
      $("updated").textContent = "✖ no answer (" + e.message + ")";
    } finally {
      setTimeout(poll, POLL_MS);
    }
  }

  // --- actions ---
  function notice(text, bad) {
    const n = $("notice");
    n.textContent = text;
    n.className = bad ? "error" : "";
  }
  async function act(body) {
    const token = sessionStorage.getItem(TOKEN_KEY);
    if (!token) { notice("Enter the admin token first.", true); $("token").focus(); return; }
    try {
      const r = await fetch("api/action", {
        method: "POST", cache: "no-store",
        headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf, "Authorization": "Bearer " + token },
        body: JSON.stringify(body),
      });
      const text = (await r.text()).trim();
      const what = body.action + " " + body.service + (body.server ? " " + body.server : "") + (body.weight != null ? " → " + body.weight : "");
      if (r.ok) notice("✔ " + what + ": done");
      else notice("✖ " + what + ": " + text + " (" + r.status + ")", true);
    } catch (e) {
      notice("✖ " + e.message, true);
    }
  }
  function setupAuth() {
    if (!actionsOn) return;
    const form = $("auth");
    form.hidden = false;
    const show = () => { $("auth-state").textContent = sessionStorage.getItem(TOKEN_KEY) ? "token set for this tab" : "no token: actions will be refused"; };
    form.addEventListener("submit", (e) => {
      e.preventDefault();
      const v = $("token").value.trim();
      if (v) sessionStorage.setItem(TOKEN_KEY, v);
      $("token").value = "";
      show();
    });
    $("token-forget").addEventListener("click", () => { sessionStorage.removeItem(TOKEN_KEY); show(); });
    show();
  }

  $("interval").textContent = String(POLL_MS / 1000);
  setupAuth();
  poll();
})();
