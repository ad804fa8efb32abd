// The pure machine, driven input by input: what the conformance vectors do
// not cover (offline/online, the close-code table as a whole) and the rules a
// UI relies on (ping at once, seq and progress never backwards).
import assert from "node:assert/strict";
import { test } from "node:test";
import { Client, CloseCode, LITERAL_PING, closeAction, defaultConfig } from "../dist/index.js";

const T0 = 1_000_000;

function client({ random = () => 0.5, lastSeq } = {}) {
  return new Client(defaultConfig("job-1", "app-1"), "tok", undefined, random, lastSeq);
}

const frame = (type, seq, payload) =>
  JSON.stringify({ type, jobId: "job-1", pipeline: "csv_import", timestamp: T0, version: "1.0.0", seq, payload });
const snapshot = (seq, processedCount, { resumed = false, recovered = false, status = "processing" } = {}) =>
  frame(resumed ? "reconnected" : "snapshot", seq, { status, processedCount, totalCount: 10, recovered });
const progress = (seq, processedCount) => frame("job_progress", seq, { processedCount, totalCount: 10 });
const of = (effects, type) => effects.filter((e) => e.type === type);

/** A client that is active on its first socket, at T0. */
function active(c = client()) {
  c.handle(T0, { type: "start" });
  c.handle(T0, { type: "opened" });
  c.handle(T0, { type: "frame", text: snapshot(0, 0) });
  assert.equal(c.state.name, "active");
  return c;
}

test("the literal ping goes out as soon as the socket opens, then every interval", () => {
  const c = client();
  c.handle(T0, { type: "start" });
  const fx = c.handle(T0 + 5, { type: "opened" });
  assert.deepEqual(of(fx, "send"), [{ type: "send", text: LITERAL_PING }]);
  assert.deepEqual(of(fx, "set_timer"), [{ type: "set_timer", at: T0 + 5 + 30_000 }]);
  c.handle(T0 + 10, { type: "frame", text: snapshot(0, 0) });
  assert.deepEqual(of(c.handle(T0 + 30_004, { type: "tick" }), "send"), []);
  assert.deepEqual(of(c.handle(T0 + 30_005, { type: "tick" }), "send"), [{ type: "send", text: LITERAL_PING }]);
});

test("a timer that fired early is armed again for the same deadline", () => {
  // Node's timers can fire a millisecond before Date.now() reaches the
  // deadline; without the re-arm the client waited forever (a CI flake).
  const c = client();
  c.handle(T0, { type: "start" });
  const [wait] = of(c.handle(T0, { type: "closed" }), "waiting");
  assert.ok(wait.at > T0);
  assert.deepEqual(c.handle(wait.at - 1, { type: "tick" }), [{ type: "set_timer", at: wait.at }]);
  assert.equal(of(c.handle(wait.at, { type: "tick" }), "connect").length, 1);
  assert.deepEqual(c.handle(wait.at, { type: "tick" }), [], "a stale tick with nothing due changes nothing");
});

test("seq and processedCount never go backwards on live frames", () => {
  const c = active();
  c.handle(T0, { type: "frame", text: progress(5, 5) });
  const fx = c.handle(T0, { type: "frame", text: progress(3, 3) });
  assert.equal(of(fx, "progress")[0].view.seq, 5);
  assert.equal(c.view.processedCount, 5);
});

test("a drop resumes with lastSeq and reports the resume", () => {
  const c = active();
  c.handle(T0, { type: "frame", text: progress(4, 4) });
  const dropped = c.handle(T0 + 1, { type: "closed", code: 1012 });
  const [wait] = of(dropped, "waiting");
  assert.equal(wait.attempt, 0);
  assert.equal(wait.minMs, 0);
  assert.equal(wait.maxMs, 1000);
  assert.equal(wait.at, T0 + 1 + 500);
  const [connect] = of(c.handle(wait.at, { type: "tick" }), "connect");
  assert.equal(connect.params.lastSeq, 4);
  c.handle(wait.at, { type: "opened" });
  const fx = c.handle(wait.at, { type: "frame", text: snapshot(6, 6, { resumed: true, recovered: true }) });
  assert.deepEqual(of(fx, "resumed"), [{ type: "resumed", from: 4, recovered: true }]);
  assert.equal(c.view.recovered, true);
  assert.equal(c.view.seq, 6);
});

test("jitter spans exactly min ..= max", () => {
  for (const [r, delay] of [
    [0, 1000],
    [0.9999999, 2000],
    [1, 2000],
    [Number.NaN, 1000],
  ]) {
    const c = active(client({ random: () => r }));
    const [wait] = of(c.handle(T0, { type: "closed", code: 1011 }), "waiting");
    assert.equal(wait.at - T0, delay, `r = ${r}`);
  }
});

test("offline drops the socket and waits with no timer; online reconnects at once", () => {
  const c = active();
  c.handle(T0, { type: "frame", text: progress(2, 2) });
  const off = c.handle(T0 + 1, { type: "offline" });
  assert.deepEqual(of(off, "close"), [{ type: "close", code: 1000 }]);
  assert.deepEqual(of(off, "set_timer"), [{ type: "set_timer", at: undefined }]);
  assert.deepEqual(c.state, { name: "offline", attempt: 0 });
  assert.deepEqual(c.handle(T0 + 60_000, { type: "tick" }), []);
  assert.deepEqual(c.handle(T0 + 60_000, { type: "closed" }), [], "the dropped socket's close is stale");
  const [connect] = of(c.handle(T0 + 60_001, { type: "online" }), "connect");
  assert.equal(connect.params.lastSeq, 2);
  assert.deepEqual(c.state, { name: "connecting", attempt: 0 });
});

test("offline while waiting to reconnect cancels the wait", () => {
  const c = active();
  c.handle(T0, { type: "closed", code: 1006 });
  assert.equal(c.state.name, "reconnecting");
  const fx = c.handle(T0 + 1, { type: "offline" });
  assert.deepEqual(fx, [{ type: "set_timer", at: undefined }]);
  assert.equal(of(c.handle(T0 + 2, { type: "online" }), "connect").length, 1);
});

test("offline after job_complete ends the watch: only the close was lost", () => {
  const c = active();
  c.handle(T0, { type: "frame", text: frame("job_complete", 3, { summary: { rows: 10 } }) });
  const fx = c.handle(T0 + 1, { type: "offline" });
  assert.deepEqual(of(fx, "finished")[0].state, {
    name: "completed",
    end: { kind: "succeeded", summary: { rows: 10 } },
  });
});

test("cancel is sent only on a live socket", () => {
  const c = client();
  c.handle(T0, { type: "start" });
  assert.deepEqual(of(c.handle(T0, { type: "cancel" }), "send"), []);
  c.handle(T0, { type: "opened" });
  c.handle(T0, { type: "frame", text: snapshot(0, 0) });
  assert.deepEqual(of(c.handle(T0, { type: "cancel" }), "send"), [{ type: "send", text: '{"type":"cancel"}' }]);
  const fx = c.handle(T0, { type: "closed", code: 1001 });
  assert.deepEqual(of(fx, "finished")[0].state, { name: "completed", end: { kind: "canceled" } });
});

test("the close-code table is SPEC §4's, as the Rust core's CloseCode::action", () => {
  const expected = {
    1000: { kind: "done" },
    1001: { kind: "done" },
    1002: { kind: "stop" },
    1003: { kind: "stop" },
    1006: { kind: "reconnect", minDelay: 0 },
    1008: { kind: "reauthenticate" },
    1009: { kind: "stop" },
    1011: { kind: "reconnect", minDelay: 1000 },
    1012: { kind: "reconnect", minDelay: 0 },
    1013: { kind: "reconnect", minDelay: 5000 },
    4000: { kind: "stop" },
    4001: { kind: "done" },
    4002: { kind: "reconnect", minDelay: 0 },
    4999: { kind: "reconnect", minDelay: 0 },
  };
  for (const [code, action] of Object.entries(expected)) assert.deepEqual(closeAction(Number(code)), action, code);
  assert.equal(Object.keys(CloseCode).length, 13);
});

test("a finished machine ignores everything", () => {
  const c = active();
  c.handle(T0, { type: "closed", code: 4000 });
  assert.deepEqual(c.state, { name: "failed", reason: { kind: "superseded" } });
  for (const input of [{ type: "start" }, { type: "online" }, { type: "tick" }, { type: "closed", code: 1012 }]) {
    assert.deepEqual(c.handle(T0 + 1, input), []);
  }
});
