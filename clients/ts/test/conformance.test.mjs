// Replays every conformance vector (conformance/README.md at the repository
// root) through the TypeScript machine and its URL builders, step by step.
// CONFORMANCE_VECTORS=<dir> points it at another copy of the vectors.
import assert from "node:assert/strict";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { Client, defaultConfig, jobStateUrl, progressUrl } from "../dist/index.js";

const here = dirname(fileURLToPath(import.meta.url));
const dir = resolve(process.env.CONFORMANCE_VECTORS ?? join(here, "../../../conformance/vectors"));
const files = existsSync(dir) ? readdirSync(dir).filter((f) => f.endsWith(".json")).sort() : [];

const orNull = (v) => (v === undefined ? null : v);
const orUndefined = (v) => (v === null ? undefined : v);

function machine(vector) {
  const c = vector.config;
  const config = defaultConfig(c.jobId, orUndefined(c.clientId));
  Object.assign(config, {
    backoffBase: c.backoffBaseMs,
    backoffCap: c.backoffCapMs,
    syncAfter: c.syncAfter,
    syncTries: c.syncTries,
    pingInterval: c.pingIntervalMs,
  });
  const draws = [...vector.random];
  const used = [];
  const random = () => {
    assert.ok(draws.length > 0, "the machine drew more random values than the vector has");
    used.push(draws[0]);
    return draws.shift();
  };
  return { client: new Client(config, c.token, orUndefined(c.tokenExpiresAt), random), used };
}

function input(i) {
  switch (i.type) {
    case "time":
      return { type: "tick" };
    case "stateFetched":
      return { type: "state_fetched", status: i.status, body: orUndefined(i.body) };
    case "refused":
      return { type: "refused", status: i.status, retryAfter: orUndefined(i.retryAfter) };
    case "closed":
      return { type: "closed", code: orUndefined(i.code) };
    case "frame":
      return { type: "frame", text: i.text };
    case "start":
    case "opened":
    case "cancel":
    case "stop":
      return { type: i.type };
    default:
      throw new Error(`unknown input type ${i.type}: update this runner to the format`);
  }
}

const viewJson = (v) => ({
  status: orNull(v.status),
  processedCount: v.processedCount,
  totalCount: orNull(v.totalCount),
  seq: orNull(v.seq),
  recovered: v.recovered,
  message: orNull(v.message),
});

const stateJson = (s) => ({ lifecycle: s.name, attempt: orNull(s.attempt) });

function outcomeJson(s) {
  if (s.name === "completed") {
    const e = s.end;
    if (e.kind === "succeeded") return { result: "completed", summary: orNull(e.summary) };
    if (e.kind === "failed") return { result: "failed", code: e.code, message: e.message };
    return { result: "canceled" };
  }
  const r = s.reason;
  return {
    result: "gave_up",
    reason: r.kind,
    status: r.kind === "bad_request" ? r.status : null,
    closeCode: r.kind === "refused" ? r.code : null,
  };
}

/** What the client did after one input, in the format's `expect` shape. */
function observe(state, now, effects, vector) {
  const out = {
    actions: [],
    progress: [],
    state: null,
    timerAtMs: null,
    wait: null,
    token: null,
    resumed: null,
    outcome: null,
  };
  for (const e of effects) {
    switch (e.type) {
      case "connect": {
        const url = progressUrl(vector.config.wsUrl, e.params);
        out.actions.push({ type: "connect", url, query: Object.fromEntries(new URL(url).searchParams) });
        break;
      }
      case "send":
        out.actions.push({ type: "send", text: e.text });
        break;
      case "close":
        out.actions.push({ type: "close", code: e.code });
        break;
      case "fetch_state":
        out.actions.push({
          type: "fetchState",
          url: jobStateUrl(vector.config.wsUrl, vector.config.jobId),
          authorization: `Bearer ${e.token}`,
        });
        break;
      case "set_timer":
        state.timer = orNull(e.at);
        break;
      case "progress":
        out.progress.push(viewJson(e.view));
        break;
      case "token_updated":
        out.token = { token: state.client.token, expiresAt: e.expiresAt };
        break;
      case "finished":
        out.outcome = outcomeJson(e.state);
        break;
      case "waiting":
        out.wait = {
          attempt: e.attempt,
          minMs: e.minMs,
          maxMs: e.maxMs,
          delayMs: e.at - now,
          random: orNull(state.used.at(-1)),
        };
        break;
      case "resumed":
        out.resumed = { fromSeq: e.from, recovered: e.recovered };
        break;
      default:
        throw new Error(`unexpected effect ${e.type}`);
    }
  }
  out.state = stateJson(state.client.state);
  out.timerAtMs = state.timer;
  return out;
}

test("the vectors are there", () => {
  assert.ok(files.length > 0, `no vectors in ${dir} (set CONFORMANCE_VECTORS to another copy)`);
});

for (const file of files) {
  test(file, () => {
    const vector = JSON.parse(readFileSync(join(dir, file), "utf8"));
    assert.equal(vector.format, 1, "this runner reads format 1");
    const state = { ...machine(vector), timer: null };
    vector.steps.forEach((step, i) => {
      const effects = state.client.handle(step.atMs, input(step.input));
      const seen = observe(state, step.atMs, effects, vector);
      const expect = Object.fromEntries(Object.keys(seen).map((k) => [k, orNull(step.expect[k])]));
      // Parameters are compared, not their order or encoding (conformance/README.md).
      for (const a of [...seen.actions, ...(expect.actions ?? [])]) {
        if (a.type === "connect") a.url = a.url.split("?")[0];
      }
      assert.deepStrictEqual(seen, expect, `${vector.name}, step ${i} (${step.input.type} at ${step.atMs} ms)`);
    });
  });
}
