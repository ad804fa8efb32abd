// The demo page's server, playing "the app's backend": it holds the producer
// secret, creates a job at the gateway and hands the page only what a
// subscriber needs ({jobId, wsUrl, token, expiresAt, stateUrl}); a demo
// producer then posts the job's progress. Node's http module, no framework.
//
//   PRODUCER_SECRET=… node web/server.mjs --gateway http://127.0.0.1:8787 [--port 8788] [--no-producer]
//
// Never logs a token, the secret, or a URL that holds one.
import { readFile } from "node:fs/promises";
import { createServer } from "node:http";
import { dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { parseArgs } from "node:util";

const here = dirname(fileURLToPath(import.meta.url));
const CLIENT_DIST = join(here, "../clients/ts/dist");

const FILES = {
  "/": ["index.html", "text/html; charset=utf-8"],
  "/app.js": ["app.js", "text/javascript; charset=utf-8"],
};

/**
 * The page server. `demoProducer` (default true) posts a demo job's events;
 * without it the caller posts them (the browser test does).
 */
export function createPageServer({ gatewayUrl, producerSecret, demoProducer = true, totalCount = 30, stepMs = 300 }) {
  const gateway = gatewayUrl.replace(/\/+$/, "");
  const producerCall = (path, body) =>
    fetch(`${gateway}${path}`, {
      method: "POST",
      headers: { authorization: `Bearer ${producerSecret}`, "content-type": "application/json" },
      body: JSON.stringify(body),
    });
  const producers = new Set();

  async function createJob() {
    const r = await producerCall("/api/jobs", { pipeline: "csv_import", totalCount });
    if (r.status !== 202) throw new Error(`the gateway answered ${r.status} to POST /api/jobs`);
    const job = await r.json();
    if (demoProducer) {
      const run = produce(job.jobId).finally(() => producers.delete(run));
      producers.add(run);
    }
    const { jobId, wsUrl, token, expiresAt, stateUrl } = job;
    return { jobId, wsUrl, token, expiresAt, stateUrl, totalCount };
  }

  /** Posts started, one progress per item, complete; stops when the job is frozen (canceled). */
  async function produce(jobId) {
    const post = async (event) => {
      const r = await producerCall(`/api/jobs/${encodeURIComponent(jobId)}/events`, event);
      return r.status === 202;
    };
    const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
    try {
      if (!(await post({ type: "started", totalCount, eventId: "started" }))) return;
      for (let i = 1; i <= totalCount; i++) {
        await sleep(stepMs);
        const event = { type: "progress", processedCount: i, totalCount, currentItem: `row ${i} of ${totalCount}` };
        if (!(await post({ ...event, eventId: `progress-${i}` }))) return;
      }
      await sleep(stepMs);
      await post({ type: "complete", summary: { imported: totalCount, skipped: 0 }, eventId: "complete" });
    } catch (e) {
      console.error(`[page] demo producer of job ${jobId} stopped: ${e.message}`);
    }
  }

  const server = createServer(async (req, res) => {
    const path = new URL(req.url ?? "/", "http://page").pathname;
    try {
      if (req.method === "POST" && path === "/api/demo-job") {
        const job = await createJob();
        console.error(`[page] created job ${job.jobId}`);
        return send(res, 200, "application/json", JSON.stringify(job), { "cache-control": "no-store" });
      }
      if (req.method !== "GET") return send(res, 405, "text/plain", "GET pages, POST /api/demo-job\n");
      const file = FILES[path];
      if (file) return send(res, 200, file[1], await readFile(join(here, file[0])));
      const m = /^\/client\/([A-Za-z]+\.js)$/.exec(path);
      if (m) {
        const body = await readFile(join(CLIENT_DIST, m[1])).catch(() => null);
        if (body) return send(res, 200, "text/javascript; charset=utf-8", body);
        return send(res, 404, "text/plain", "client not built: run node_modules/.bin/tsc -p clients/ts\n");
      }
      return send(res, 404, "text/plain", "not found\n");
    } catch (e) {
      return send(res, 502, "text/plain", `the gateway could not be reached: ${e.message}\n`);
    }
  });
  server.producers = producers;
  return server;
}

function send(res, status, type, body, headers = {}) {
  res.writeHead(status, { "content-type": type, ...headers });
  res.end(body);
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href) {
  const { values } = parseArgs({
    options: {
      gateway: { type: "string", default: "http://127.0.0.1:8787" },
      port: { type: "string", default: "8788" },
      "no-producer": { type: "boolean", default: false },
    },
  });
  const producerSecret = process.env.PRODUCER_SECRET;
  if (!producerSecret) {
    console.error("[page] set PRODUCER_SECRET (the gateway's, from .dev.vars)");
    process.exit(2);
  }
  const server = createPageServer({
    gatewayUrl: values.gateway,
    producerSecret,
    demoProducer: !values["no-producer"],
  });
  server.listen(Number(values.port), "127.0.0.1", () => {
    console.error(`[page] http://127.0.0.1:${server.address().port}/ (gateway ${values.gateway})`);
  });
}
