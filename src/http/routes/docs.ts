import type { App } from "../env";
import { describeRoute } from "../openapi";

/**
 * GET /docs: a page that reads /openapi.json and lists every operation (method, path, scope,
 * parameters, body and answers). Everything it needs is in this one answer, no CDN: it works
 * where the API is reachable and nothing else is.
 */
const PAGE = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>flashsale API</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body{font:14px/1.45 system-ui,sans-serif;margin:0 auto;max-width:1100px;padding:1rem 2rem;color:#222}
h2{border-bottom:1px solid #ddd;padding-bottom:.2rem;margin-top:2rem}
details{border:1px solid #ddd;border-radius:4px;margin:.4rem 0;padding:.3rem .6rem}
summary{cursor:pointer}
.m{display:inline-block;min-width:4.5rem;font-weight:600;font-family:monospace}
.get{color:#0a6}.post{color:#06c}.delete{color:#c33}
code,pre{font-family:ui-monospace,monospace;font-size:12px}
pre{background:#f6f6f6;padding:.5rem;overflow:auto;max-height:24rem}
.scope{background:#fff3cd;border-radius:3px;padding:0 .3rem;font-family:monospace;font-size:12px}
</style></head><body>
<h1>flashsale API</h1>
<p>From <a href="/openapi.json">/openapi.json</a> (OpenAPI 3.1). Admin operations take
<code>Authorization: Bearer &lt;token&gt;</code> with the scope shown.</p>
<div id="ops">loading…</div>
<script>
const esc = (s) => String(s).replace(/[&<>"]/g, (c) => ({"&":"&amp;","<":"&lt;",">":"&gt;",'"':"&quot;"})[c]);
const json = (v) => "<pre>" + esc(JSON.stringify(v, null, 2)) + "</pre>";
fetch("/openapi.json").then((r) => r.json()).then((doc) => {
  const byTag = {};
  for (const [path, ops] of Object.entries(doc.paths)) for (const [method, op] of Object.entries(ops)) {
    const tag = (op.tags && op.tags[0]) || "other";
    (byTag[tag] = byTag[tag] || []).push({ path, method, op });
  }
  let html = "";
  for (const tag of Object.keys(byTag).sort()) {
    html += "<h2>" + esc(tag) + "</h2>";
    for (const { path, method, op } of byTag[tag]) {
      const scope = op.security && op.security[0] && Object.values(op.security[0])[0][0];
      html += "<details><summary><span class='m " + method + "'>" + method.toUpperCase() + "</span> <code>" +
        esc(path) + "</code> " + esc(op.summary || "") + (scope ? " <span class='scope'>" + esc(scope) + "</span>" : "") + "</summary>";
      if (op.parameters && op.parameters.length) html += "<h4>parameters</h4>" + json(op.parameters.map((p) => ({ in: p.in, name: p.name, required: p.required, schema: p.schema })));
      const body = op.requestBody && op.requestBody.content["application/json"];
      if (body) html += "<h4>body</h4>" + json(body.schema);
      html += "<h4>answers</h4><ul>";
      for (const [status, r] of Object.entries(op.responses)) html += "<li><b>" + esc(status) + "</b> " + esc(r.description) + "</li>";
      html += "</ul></details>";
    }
  }
  document.getElementById("ops").innerHTML = html;
}).catch((e) => { document.getElementById("ops").textContent = "could not load /openapi.json: " + e; });
</script></body></html>`;

export function registerDocs(app: App) {
  const route = describeRoute(app, {
    method: "get",
    path: "/docs",
    summary: "This API's documentation page, served by the app (no external assets)",
    tags: ["docs"],
    responses: { 200: { description: "an HTML page", contentType: "text/html" } },
  });
  app.get(route.path, (c) => {
    c.header("cache-control", "no-cache");
    return c.html(PAGE);
  });
}
