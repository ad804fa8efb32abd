// The shell (`watchJob`) against a stand-in gateway on loopback (the `ws`
// package's server): real sockets, real timers, Node's `ws` client as the
// WebSocket. The real Worker is exercised by the browser test (web/test).
import assert from "node:assert/strict";
import { once } from "node:events";
import { createServer } from "node:net";
import { after, test } from "node:test";
import WebSocket, { WebSocketServer } from "ws";
import { LITERAL_PING, watchJob } from "../dist/index.js";

/** "Now" events (a frame, a close, a reconnect) are waited for at most 2 s. */
const NOW_MS = 2000;

const servers = [];
after(() => Promise.all(servers.map((s) => new Promise((r) => s.close(r)))));

/** A stand-in gateway: each accepted socket is queued with its URL; `refuse` answers upgrades with an HTTP status. */
async function gateway({ refuse } = {}) {
  const sockets = [];
  const waiting = [];
  const server = new WebSocketServer({
    port: 0,
    host: "127.0.0.1",
    verifyClient: refuse ? (_info, done) => done(false, refuse) : undefined,
  });
  servers.push(server);
  server.on("connection", (ws, req) => {
    const url = new URL(req.url, "http://x");
    const frames = [];
    const next = [];
    ws.on("message", (data) => {
      const text = data.toString();
      const w = next.shift();
      if (w) w(text);
      else frames.push(text);
    });
    const conn = {
      ws,
      url,
      /** The next text frame the client sends (≤ 2 s). */
      frame: () =>
        within(frames.length ? Promise.resolve(frames.shift()) : new Promise((r) => next.push(r)), "a client frame"),
      send: (o) => ws.send(JSON.stringify(o)),
    };
    const w = waiting.shift();
    if (w) w(conn);
    else sockets.push(conn);
  });
  await once(server, "listening");
  const { port } = server.address();
  return {
    wsUrl: `ws://127.0.0.1:${port}/ws/progress?jobId=job-1`,
    /** The next socket the client opens (≤ `ms`). */
    accept: (ms = NOW_MS) =>
      within(sockets.length ? Promise.resolve(sockets.shift()) : new Promise((r) => waiting.push(r)), "a connection", ms),
    pending: () => sockets.length,
  };
}

function within(promise, what, ms = NOW_MS) {
  let t;
  return Promise.race([
    promise,
    new Promise((_, reject) => (t = setTimeout(() => reject(new Error(`no ${what} within ${ms} ms`)), ms))),
  ]).finally(() => clearTimeout(t));
}

const envelope = (type, seq, payload) => ({
  type,
  jobId: "job-1",
  pipeline: "csv_import",
  timestamp: Date.now(),
  version: "1.0.0",
  seq,
  payload,
});
const snapshot = (seq, processedCount, recovered) =>
  envelope(recovered === undefined ? "snapshot" : "reconnected", seq, {
    status: "processing",
    processedCount,
    totalCount: 10,
    progress: processedCount / 10,
    currentProgress: processedCount / 10,
    recovered: recovered ?? false,
  });
const progress = (seq, processedCount) => envelope("job_progress", seq, { processedCount, totalCount: 10, progress: processedCount / 10 });

/** A fake `window` for online/offline events. */
function network() {
  const target = new EventTarget();
  return Object.assign(target, { navigator: { onLine: true } });
}

test("pings at once, follows progress, resumes after a 1012 and completes", async () => {
  const gw = await gateway();
  const views = [];
  const events = [];
  const handle = watchJob({
    wsUrl: gw.wsUrl,
    token: "tok-1",
    clientId: "app-1",
    WebSocket,
    network: null,
    backoffBase: 50,
    onProgress: (v) => views.push(v),
    onEvent: (e) => events.push(e.type),
  });
  const first = await gw.accept();
  assert.equal(first.url.searchParams.get("token"), "tok-1");
  assert.equal(first.url.searchParams.get("clientId"), "app-1");
  assert.equal(first.url.searchParams.get("lastSeq"), null);
  assert.equal(await first.frame(), LITERAL_PING);
  first.send(snapshot(0, 0));
  first.send(progress(1, 3));
  first.ws.close(1012);
  const second = await gw.accept();
  assert.equal(second.url.searchParams.get("lastSeq"), "1");
  assert.equal(await second.frame(), LITERAL_PING);
  second.send(snapshot(2, 5, true));
  second.send(envelope("job_complete", 3, { summary: { rows: 10 } }));
  second.ws.close(1000);
  const outcome = await within(handle.outcome, "outcome");
  assert.deepEqual(outcome.ending, { kind: "job", end: { kind: "succeeded", summary: { rows: 10 } } });
  assert.deepEqual(
    views.map((v) => v.processedCount),
    [0, 3, 5, 5, 5],
  );
  assert.equal(views.at(-1).status, "completed");
  assert.ok(events.includes("resumed"), events.join());
  assert.equal(gw.pending(), 0, "no reconnect after 1000");
});

test("offline drops the socket with no reconnect until online, then resumes at once", async () => {
  const gw = await gateway();
  const net = network();
  const handle = watchJob({ wsUrl: gw.wsUrl, token: "tok", WebSocket, network: net, backoffBase: 50 });
  const first = await gw.accept();
  await first.frame();
  first.send(snapshot(0, 0));
  first.send(progress(1, 4));
  await within(
    new Promise((r) => {
      const poll = () => (handle.view.seq === 1 ? r() : setTimeout(poll, 5));
      poll();
    }),
    "progress",
  );
  const closed = once(first.ws, "close");
  net.dispatchEvent(new Event("offline"));
  await within(closed, "close of the dropped socket");
  assert.equal(handle.state.name, "offline");
  await new Promise((r) => setTimeout(r, 300));
  assert.equal(gw.pending(), 0, "no reconnect while offline");
  net.dispatchEvent(new Event("online"));
  const second = await gw.accept();
  assert.equal(second.url.searchParams.get("lastSeq"), "1");
  await second.frame();
  second.send(snapshot(1, 4, true));
  second.ws.close(1001);
  const outcome = await within(handle.outcome, "outcome");
  assert.deepEqual(outcome.ending, { kind: "job", end: { kind: "canceled" } });
  assert.equal(outcome.view.recovered, true);
});

test("cancel sends the cancel frame; 1001 ends the watch", async () => {
  const gw = await gateway();
  const handle = watchJob({ wsUrl: gw.wsUrl, token: "tok", WebSocket, network: null });
  assert.equal(handle.cancel(), false, "nothing to carry it before the snapshot");
  const s = await gw.accept();
  await s.frame();
  s.send(snapshot(0, 0));
  await within(
    new Promise((r) => {
      const poll = () => (handle.state.name === "active" ? r() : setTimeout(poll, 5));
      poll();
    }),
    "active",
  );
  assert.equal(handle.cancel(), true);
  assert.equal(await s.frame(), '{"type":"cancel"}');
  s.ws.close(1001);
  assert.deepEqual((await within(handle.outcome, "outcome")).ending, { kind: "job", end: { kind: "canceled" } });
});

test("a 401 upgrade gives up as unauthorized", async () => {
  const gw = await gateway({ refuse: 401 });
  const handle = watchJob({ wsUrl: gw.wsUrl, token: "wrong", WebSocket, network: null });
  const outcome = await within(handle.outcome, "outcome");
  assert.deepEqual(outcome.ending, { kind: "gave_up", reason: { kind: "unauthorized" } });
});

test("close() stops watching with 1000 from the client", async () => {
  const gw = await gateway();
  const handle = watchJob({ wsUrl: gw.wsUrl, token: "tok", WebSocket, network: null });
  const s = await gw.accept();
  await s.frame();
  s.send(snapshot(0, 0));
  const closed = once(s.ws, "close");
  await new Promise((r) => setTimeout(r, 50));
  handle.close();
  const [code] = await within(closed, "close");
  assert.equal(code, 1000);
  assert.deepEqual((await handle.outcome).ending, { kind: "gave_up", reason: { kind: "stopped" } });
});

test("an upgrade that never answers times out and is retried; close() while connecting", async () => {
  let connections = 0;
  const accepted = [];
  const silent = createServer((socket) => {
    connections++;
    accepted.push(socket);
    socket.on("error", () => {});
  });
  silent.listen(0, "127.0.0.1");
  await once(silent, "listening");
  servers.push(silent);
  const handle = watchJob({
    wsUrl: `ws://127.0.0.1:${silent.address().port}/ws/progress?jobId=job-1`,
    token: "tok",
    WebSocket,
    network: null,
    ioTimeout: 150,
    backoffBase: 20,
  });
  try {
    await within(
      new Promise((r) => {
        const poll = () => (connections >= 2 && handle.state.name === "connecting" ? r() : setTimeout(poll, 5));
        poll();
      }),
      "a second attempt",
    );
    handle.close();
    assert.deepEqual((await within(handle.outcome, "outcome")).ending, { kind: "gave_up", reason: { kind: "stopped" } });
    await new Promise((r) => setTimeout(r, 50)); // an "error" of the abandoned socket would surface here
  } finally {
    // Also on failure: an open socket would keep the server, and the file, from ending.
    handle.close();
    for (const socket of accepted) socket.destroy();
  }
});
