import { mkdirSync } from "node:fs";
import { createServer, type IncomingMessage, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { type Browser, type BrowserContext, chromium, type Page } from "playwright-core";
import { afterAll, beforeAll } from "vitest";
import { ROOT } from "./process";

/**
 * A real browser against the real app: Debian's Chromium (installed by ./scripts/setup) driven
 * by playwright-core, and the app served over HTTP on 127.0.0.1 with an ephemeral port through
 * node:http (the same under `bun test` and vitest on Node, which has no Bun.serve). One browser
 * per test file, closed in afterAll with the server, so nothing is left running.
 */

export const CHROMIUM = "/usr/bin/chromium";

interface FetchApp {
  fetch(request: Request): Response | Promise<Response>;
}

async function bodyOf(req: IncomingMessage): Promise<Buffer | undefined> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return chunks.length > 0 ? Buffer.concat(chunks) : undefined;
}

/** Serves `app` on 127.0.0.1:<ephemeral>; resolves with its base URL and a close. */
export async function serveApp(
  app: () => FetchApp,
): Promise<{ url: string; close: () => Promise<void> }> {
  const server: Server = createServer(async (req, res) => {
    try {
      const headers = new Headers();
      for (const [name, value] of Object.entries(req.headers)) {
        if (Array.isArray(value)) for (const v of value) headers.append(name, v);
        else if (value !== undefined) headers.set(name, value);
      }
      const method = req.method ?? "GET";
      const body = method === "GET" || method === "HEAD" ? undefined : await bodyOf(req);
      const response = await app().fetch(
        new Request(`http://${req.headers.host}${req.url}`, { method, headers, body }),
      );
      const out: [string, string][] = [];
      response.headers.forEach((value, name) => {
        if (name !== "set-cookie") out.push([name, value]);
      });
      for (const cookie of response.headers.getSetCookie()) out.push(["set-cookie", cookie]);
      res.writeHead(response.status, out);
      res.end(Buffer.from(await response.arrayBuffer()));
    } catch (error) {
      res.writeHead(599, { "content-type": "text/plain" });
      res.end(`the test server failed: ${String(error)}`);
    }
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

export interface BrowserHarness {
  /** The served app's base URL. */
  readonly url: string;
  /** A fresh browser context (its own cookies: one operator) with one page. */
  newOperator(): Promise<{ context: BrowserContext; page: Page }>;
}

/**
 * Starts the server and Chromium before the file's tests and stops both after them. Register
 * it after `useWorld` so the browser closes before the world is taken down.
 */
export function useBrowser(app: () => FetchApp): BrowserHarness {
  let browser: Browser | undefined;
  let server: { url: string; close: () => Promise<void> } | undefined;
  const contexts: BrowserContext[] = [];
  beforeAll(async () => {
    server = await serveApp(app);
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: ["--headless", "--no-sandbox", "--disable-gpu"],
    });
  }, 120_000);
  afterAll(async () => {
    for (const context of contexts.splice(0)) await context.close().catch(() => {});
    await browser?.close();
    await server?.close();
  }, 60_000);
  return {
    get url() {
      if (!server) throw new Error("the server starts in beforeAll");
      return server.url;
    },
    async newOperator() {
      if (!browser || !server) throw new Error("the browser starts in beforeAll");
      const context = await browser.newContext({
        baseURL: server.url,
        timezoneId: "Europe/Berlin",
      });
      context.setDefaultTimeout(30_000);
      contexts.push(context);
      return { context, page: await context.newPage() };
    },
  };
}

/** Saves a screenshot as docs/console/<name>.png, only when CONSOLE_SCREENSHOTS=1. */
export async function screenshot(page: Page, name: string): Promise<void> {
  if (process.env.CONSOLE_SCREENSHOTS !== "1") return;
  const dir = join(ROOT, "docs", "console");
  mkdirSync(dir, { recursive: true });
  await page.screenshot({ path: join(dir, `${name}.png`), fullPage: true });
}
