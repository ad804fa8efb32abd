// Baseline (d) of scripts/bench.sh: the seed's ProgressWebSocketDO design,
// re-created from its documents (seeds 000-004) on the benchmark's surface:
// - job creation stores the auth token and its expiry (setAuthToken);
// - every upgrade reads both with two storage reads in parallel (seed 004);
// - server.accept() (no hibernation) and one socket per job: a new socket
//   closes the previous one with 1000 "Client reconnecting" (seed 000);
// - job state is written every 5 updates or 10 s (seed 003), so the 202 of
//   most events waits for no write (and a crash loses up to 4 of them).
// Pings are answered by the object's own message handler.
import { DurableObject } from "cloudflare:workers";
import { created } from "./shape.js";

const TOKEN_TTL_MS = 2 * 60 * 60 * 1000;
const WRITE_EVERY = 5;
const WRITE_AFTER_MS = 10_000;

export class SeedRoom extends DurableObject {
  constructor(ctx, env) {
    super(ctx, env);
    this.storage = ctx.storage;
    this.webSocket = null;
    this.state = { seq: 0, processedCount: 0, status: "pending" };
    this.updates = 0;
    this.lastWrite = 0;
  }

  async fetch(request) {
    const url = new URL(request.url);
    if (url.pathname === "/api/jobs") {
      await request.text();
      const token = crypto.randomUUID();
      const expiresAt = Date.now() + TOKEN_TTL_MS;
      await this.storage.put("authToken", token);
      await this.storage.put("authTokenExpiration", expiresAt);
      return json(202, created(request.headers.get("x-job-id"), token, expiresAt));
    }
    if (url.pathname === "/ws/progress") return this.upgrade(url);
    const event = await request.json();
    await this.updateJobState(event);
    this.send({ type: "job_progress", seq: this.state.seq, payload: event });
    return json(202, { seq: this.state.seq });
  }

  async upgrade(url) {
    const [storedToken, expiration] = await Promise.all([
      this.storage.get("authToken"),
      this.storage.get("authTokenExpiration"),
    ]);
    const provided = url.searchParams.get("token");
    if (!storedToken || storedToken !== provided) return new Response("Unauthorized", { status: 401 });
    if (Date.now() > expiration) return new Response("Token expired", { status: 401 });
    if (this.webSocket) this.webSocket.close(1000, "Client reconnecting");
    const [client, server] = Object.values(new WebSocketPair());
    server.accept();
    this.webSocket = server;
    server.addEventListener("message", (event) => {
      let msg;
      try {
        msg = JSON.parse(event.data);
      } catch {
        return server.close(1002, "Invalid JSON");
      }
      if (msg.type === "ping") server.send('{"type":"pong"}');
    });
    server.addEventListener("close", (event) => {
      if (this.webSocket === server) this.webSocket = null;
      server.close(); // complete the closing handshake
    });
    this.send({ type: "snapshot", seq: this.state.seq, payload: this.state });
    return new Response(null, { status: 101, webSocket: client });
  }

  // Throttled: every 5 updates or 10 s.
  async updateJobState(event) {
    this.state.seq += 1;
    this.state.processedCount = event.processedCount ?? this.state.processedCount;
    this.state.status = "processing";
    this.updates += 1;
    const now = Date.now();
    if (this.updates % WRITE_EVERY === 0 || now - this.lastWrite >= WRITE_AFTER_MS) {
      this.lastWrite = now;
      await this.storage.put("jobState", this.state);
    }
  }

  send(message) {
    if (this.webSocket) this.webSocket.send(JSON.stringify(message));
  }
}

function json(status, body) {
  return new Response(JSON.stringify(body), {
    status,
    headers: { "content-type": "application/json" },
  });
}

export default {
  async fetch(request, env) {
    const url = new URL(request.url);
    if (url.pathname === "/healthz") return json(200, { status: "ok" });
    let jobId;
    if (url.pathname === "/api/jobs") {
      jobId = crypto.randomUUID();
      request = new Request(request, { headers: { "x-job-id": jobId } });
    } else if (url.pathname === "/ws/progress") {
      jobId = url.searchParams.get("jobId");
    } else {
      jobId = url.pathname.split("/")[3];
    }
    return env.ROOM.get(env.ROOM.idFromName(jobId)).fetch(request);
  },
};
