// The demo page in a real browser (Debian's chromium, driven by
// playwright-core; no browser download) against the real Worker in local
// workerd, and the same TypeScript client in Node. The test plays the
// producer: it posts the job's events itself.
//   node_modules/.bin/tsc -p clients/ts && node --test web/test/browser.test.mjs
// (scripts/test.sh runs it; it needs build/ from scripts/build-worker.sh).
// CHROMIUM=<path> overrides /usr/bin/chromium; SCREENSHOT=<file.png> keeps the finished page.
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { chromium } from "playwright-core";
import WebSocket from "ws";
import { watchJob } from "../../clients/ts/dist/index.js";
import { createPageServer } from "../server.mjs";
import { startGateway } from "./gateway.mjs";

/** A close or frame expected "now" (SPEC §3 protocol events). */
const NOW_MS = 2000;
/**
 * The same events seen through the page: the DOM is read over the DevTools
 * protocol, polled every 100 ms, on a 2-core machine shared with workerd;
 * one more second on top of the protocol's 2 s.
 */
const RENDER_MS = 3000;
/** Starting the page: a job is created and the first socket opened. */
const LOAD_MS = 15_000;
const TOTAL = 20;

let gateway;
let pageServer;
let pageUrl;
let context;
let profile;

before(async () => {
  gateway = await startGateway();
  pageServer = createPageServer({ gatewayUrl: gateway.base, producerSecret: gateway.secret, demoProducer: false, totalCount: TOTAL });
  await new Promise((r) => pageServer.listen(0, "127.0.0.1", r));
  pageUrl = `http://127.0.0.1:${pageServer.address().port}/`;
  profile = mkdtempSync(join(tmpdir(), "browser-profile-"));
  context = await chromium.launchPersistentContext(profile, {
    executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
    headless: true,
    viewport: { width: 640, height: 560 },
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
});

after(async () => {
  await context?.close().catch(() => {});
  if (profile) rmSync(profile, { recursive: true, force: true });
  await new Promise((r) => (pageServer ? pageServer.close(r) : r()));
  await gateway?.stop();
});

/** Producer calls, with the secret only the test (the app's backend) holds. */
async function post(jobId, event) {
  const r = await fetch(`${gateway.base}/api/jobs/${jobId}/events`, {
    method: "POST",
    headers: { authorization: `Bearer ${gateway.secret}`, "content-type": "application/json" },
    body: JSON.stringify(event),
  });
  assert.equal(r.status, 202, `producer event ${event.type}: ${r.status}`);
}
const progress = (n) => ({ type: "progress", processedCount: n, totalCount: TOTAL, currentItem: `row ${n}` });

/** Opens the page and returns it with the job it was handed ({jobId, wsUrl, token}). */
async function openPage() {
  const page = await context.newPage();
  const answer = page.waitForResponse((r) => r.url().endsWith("/api/demo-job"), { timeout: LOAD_MS });
  await page.goto(pageUrl);
  const job = await (await answer).json();
  await waitFor(page, () => window.demo.events.includes("connected"), LOAD_MS);
  return { page, job };
}

/** Waits until `fn` (run in the page) is true. */
function waitFor(page, fn, timeout = RENDER_MS, arg) {
  return page.waitForFunction(fn, arg, { timeout, polling: 100 });
}
const count = (page) => page.locator("#count").textContent();

test("progress, an offline spell with resume, and completion, as the page shows them", async () => {
  const { page, job } = await openPage();
  await post(job.jobId, { type: "started", totalCount: TOTAL });
  for (const n of [1, 2, 3, 4, 5]) await post(job.jobId, progress(n));
  await waitFor(page, () => document.getElementById("count").textContent === "5");
  assert.equal(await page.locator("#status").textContent(), "processing");
  assert.equal(await page.locator("#bar").getAttribute("aria-valuenow"), "25");

  // Chromium's offline emulation fires `offline` but keeps an open WebSocket
  // (frames are held, not dropped): the client itself drops the socket.
  await context.setOffline(true);
  await waitFor(page, () => window.demo.events.some((e) => e.startsWith("browser offline")));
  for (const n of [6, 7, 8, 9]) await post(job.jobId, progress(n));
  await page.waitForTimeout(500);
  assert.equal(await count(page), "5", "no progress reaches an offline page");
  const before = await page.evaluate(() => window.demo.events.length);

  await context.setOffline(false);
  await waitFor(page, () => window.demo.events.some((e) => e === "resumed from seq 6, recovered=true"));
  await waitFor(page, () => document.getElementById("count").textContent === "9");
  const since = await page.evaluate((n) => window.demo.events.slice(n), before);
  assert.deepEqual(since.slice(0, 2), ["browser online", "connecting, resuming after seq 6"], since.join(" | "));
  assert.ok(!since.some((e) => e.startsWith("reconnecting")), `no backoff wait when the network returns: ${since}`);

  for (let n = 10; n <= TOTAL; n++) await post(job.jobId, progress(n));
  await post(job.jobId, { type: "complete", summary: { imported: TOTAL, skipped: 0 } });
  await waitFor(page, () => window.demo.outcome === "completed");
  assert.equal(await page.locator("#status").textContent(), "completed");
  assert.equal(await page.locator("#result").textContent(), `Completed: {"imported":${TOTAL},"skipped":0}`);
  assert.equal(await count(page), String(TOTAL));
  assert.ok(await page.locator("#cancel").isDisabled());

  const shown = await page.evaluate(() => window.demo.shown);
  for (let i = 1; i < shown.length; i++) {
    assert.ok(shown[i] >= shown[i - 1], `progress went backwards on the page: ${shown.join(",")}`);
  }
  if (process.env.SCREENSHOT) await page.locator("main").screenshot({ path: process.env.SCREENSHOT });
  await page.close();
});

test("cancel from the page: every socket of the job gets 1001", async () => {
  const { page, job } = await openPage();
  await post(job.jobId, { type: "started", totalCount: TOTAL });
  await post(job.jobId, progress(3));
  await waitFor(page, () => !document.getElementById("cancel").disabled);

  // Another subscriber of the same job, from Node; it pings at once (SPEC §3).
  const other = new WebSocket(`${job.wsUrl}&token=${encodeURIComponent(job.token)}`);
  const otherClosed = new Promise((r) => other.once("close", (code) => r(code)));
  const snapshot = new Promise((r) => other.once("message", (d) => r(JSON.parse(d.toString()))));
  await new Promise((r, j) => {
    other.once("open", r);
    other.once("error", j);
  });
  other.send('{"type":"ping"}');
  assert.equal((await within(snapshot, "the other subscriber's snapshot")).type, "snapshot");

  await page.locator("#cancel").click();
  assert.equal(await within(otherClosed, "1001 on the other subscriber"), 1001);
  await waitFor(page, () => window.demo.outcome === "canceled");
  const events = await page.evaluate(() => window.demo.events);
  assert.ok(events.includes("disconnected (1001)"), events.join(" | "));
  assert.equal(await page.locator("#status").textContent(), "canceled");
  assert.equal(await page.locator("#result").textContent(), "Canceled");
  const state = await fetch(`${gateway.base}/api/jobs/${job.jobId}`, {
    headers: { authorization: `Bearer ${gateway.secret}` },
  }).then((r) => r.json());
  assert.equal(state.status, "canceled");
  await page.close();
});

test("the same client in Node 20 (ws) against the Worker: a revoke ends the watch; the old token is refused", async () => {
  const r = await fetch(`${gateway.base}/api/jobs`, {
    method: "POST",
    headers: { authorization: `Bearer ${gateway.secret}`, "content-type": "application/json" },
    body: JSON.stringify({ pipeline: "ai_scan", totalCount: 4 }),
  });
  const job = await r.json();
  await post(job.jobId, { type: "started", totalCount: 4 });
  const views = [];
  const handle = watchJob({ wsUrl: job.wsUrl, token: job.token, clientId: "node-1", WebSocket, onProgress: (v) => views.push(v) });
  await within(
    new Promise((ok) => {
      const poll = () => (handle.state.name === "active" ? ok() : setTimeout(poll, 10));
      poll();
    }),
    "the snapshot",
  );
  await post(job.jobId, { type: "progress", processedCount: 2, totalCount: 4 });
  const revoked = await fetch(`${gateway.base}/api/jobs/${job.jobId}/revoke`, {
    method: "POST",
    headers: { authorization: `Bearer ${gateway.secret}` },
  });
  assert.equal(revoked.status, 202);
  const outcome = await within(handle.outcome, "1008 after the revoke");
  assert.deepEqual(outcome.ending, { kind: "gave_up", reason: { kind: "revoked" } });
  assert.equal(views.at(-1).processedCount, 2);

  const again = watchJob({ wsUrl: job.wsUrl, token: job.token, WebSocket, network: null });
  const refused = await within(again.outcome, "the 401 upgrade");
  assert.deepEqual(refused.ending, { kind: "gave_up", reason: { kind: "unauthorized" } });
});

function within(promise, what, ms = NOW_MS) {
  let t;
  return Promise.race([
    promise,
    new Promise((_, reject) => (t = setTimeout(() => reject(new Error(`no ${what} within ${ms} ms`)), ms))),
  ]).finally(() => clearTimeout(t));
}
