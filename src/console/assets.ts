import type { ConsoleApp } from "./env";

/**
 * The console's stylesheet and its one script, served by the app (no CDN, and a
 * Content-Security-Policy of 'self' allows no inline script or style anywhere in the console).
 */
const CSS = `
:root { --fg:#1d232b; --muted:#5d6875; --line:#d8dde3; --bg:#f6f7f9; --ok:#1f7a3d; --bad:#b42318; --warn:#a15c00; --accent:#1d4ed8; }
* { box-sizing: border-box; }
body { margin:0; font:14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color:var(--fg); background:var(--bg); }
header { display:flex; gap:1.2em; align-items:center; padding:.6em 1.2em; background:#fff; border-bottom:1px solid var(--line); flex-wrap:wrap; }
header .brand { font-weight:600; }
header nav a { margin-right:.9em; color:var(--muted); text-decoration:none; }
header nav a.active { color:var(--fg); font-weight:600; border-bottom:2px solid var(--accent); }
header .who { margin-left:auto; color:var(--muted); }
header form { display:inline; }
main { padding:1em 1.2em 3em; max-width:1400px; }
h1 { font-size:1.35em; margin:.3em 0 .6em; } h2 { font-size:1.1em; margin:1.4em 0 .5em; }
table { border-collapse:collapse; background:#fff; border:1px solid var(--line); margin:.3em 0 1em; }
th, td { padding:.35em .6em; border-bottom:1px solid var(--line); text-align:left; vertical-align:top; }
th { background:#eef1f4; font-weight:600; white-space:nowrap; }
td.num, th.num { text-align:right; font-variant-numeric:tabular-nums; }
td.wrap { min-width:12em; max-width:28em; overflow-wrap:anywhere; }
pre { margin:0; font-size:12px; white-space:pre-wrap; overflow-wrap:anywhere; max-width:32em; }
code { font-size:12px; }
.cards { display:flex; gap:.8em; flex-wrap:wrap; margin-bottom:1em; }
.card { background:#fff; border:1px solid var(--line); padding:.6em .9em; min-width:11em; color:inherit; text-decoration:none; }
.card:hover { border-color:var(--accent); }
.kv { display:flex; flex-direction:column; font-size:12px; white-space:nowrap; }
time { white-space:nowrap; }
.card .value { font-size:1.6em; font-variant-numeric:tabular-nums; }
.card .label { color:var(--muted); }
.ok { color:var(--ok); } .bad { color:var(--bad); } .warn { color:var(--warn); } .muted { color:var(--muted); }
.badge { display:inline-block; padding:0 .45em; border-radius:3px; font-size:12px; background:#e7eaee; }
.badge.OPEN, .badge.open, .badge.FAILED, .badge.stuck { background:#fde7e4; color:var(--bad); }
.badge.ACKNOWLEDGED, .badge.PLANNED, .badge.RUNNING, .badge.in_flight, .badge.paused { background:#fff1d6; color:var(--warn); }
.badge.phase-open { background:#dcf3e3; color:var(--ok); }
.badge.phase-lost, .badge.phase-paused { background:#fde7e4; color:var(--bad); }
.badge.RESOLVED, .badge.APPLIED, .badge.APPROVED, .badge.SUCCEEDED, .badge.consistent, .badge.redriven { background:#dcf3e3; color:var(--ok); }
form.filters { display:flex; gap:.6em; flex-wrap:wrap; align-items:end; background:#fff; border:1px solid var(--line); padding:.6em; margin-bottom:.8em; }
form.filters label, form.stack label { display:flex; flex-direction:column; font-size:12px; color:var(--muted); }
form.stack { display:flex; flex-direction:column; gap:.5em; max-width:34em; background:#fff; border:1px solid var(--line); padding:.8em; }
form.inline { display:flex; gap:.3em; align-items:center; margin:0; }
input, select, button, textarea { font:inherit; padding:.25em .45em; }
button { white-space:nowrap; cursor:pointer; border:1px solid #9aa4af; background:#fff; border-radius:3px; }
button.primary { background:var(--accent); color:#fff; border-color:var(--accent); }
.notice { background:#e8f0fe; border:1px solid #b3c7f7; padding:.5em .8em; margin-bottom:1em; }
.problem { background:#fde7e4; border:1px solid #f3b4ab; padding:.7em .9em; margin-bottom:1em; }
.signin { max-width:30em; margin:4em auto; }
`;

/** Shows every <time datetime> in the operator's own time zone (the page renders UTC). */
const JS = `
(function () {
  var zone = Intl.DateTimeFormat().resolvedOptions().timeZone;
  var format = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "medium" });
  document.querySelectorAll("time[datetime]").forEach(function (el) {
    var at = new Date(el.getAttribute("datetime"));
    if (isNaN(at.getTime())) return;
    el.title = el.getAttribute("datetime") + " (UTC)";
    el.textContent = format.format(at);
    el.dataset.zone = zone;
  });
  document.querySelectorAll("[data-zone-label]").forEach(function (el) { el.textContent = zone; });
})();
`;

export const ASSET_PATHS = { css: "/console/assets/console.css", js: "/console/assets/console.js" };

export function registerConsoleAssets(app: ConsoleApp) {
  const serve = (body: string, type: string) => () =>
    new Response(body, {
      headers: { "content-type": type, "cache-control": "public, max-age=300" },
    });
  app.get("/assets/console.css", serve(CSS, "text/css; charset=utf-8"));
  app.get("/assets/console.js", serve(JS, "text/javascript; charset=utf-8"));
}
