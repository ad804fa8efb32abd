// Baselines (b) and (c) of scripts/bench.sh: the floor, a bare JavaScript
// Durable Object with the same HTTP and WebSocket surface the benchmark
// drives on the gateway, and nothing else: no auth, no validation, no log
// line. With `WRITE_EACH_EVENT = "1"` (floor-write.toml) it awaits one
// storage.put per event before its 202, so the price of durability is seen
// apart from everything else.
import { DurableObject } from "cloudflare:workers";
import { created } from "./shape.js";

const PING = '{"type":"ping"}';
const PONG = '{"type":"pong"}';

export class FloorRoom extends DurableObject {
  constructor(ctx, env) {
    super(ctx, env);
    // Literal pings are answered by the runtime, without waking the object.
    ctx.setWebSocketAutoResponse(new WebSocketRequestResponsePair(PING, PONG));
    this.writes = env.WRITE_EACH_EVENT === "1";
    this.seq = 0;
  }

  async fetch(request) {
    const url = new URL(request.url);
    if (url.pathname === "/api/jobs") {
      // Job creation only makes the object exist (the body is read, as the
      // gateway reads it).
      await request.text();
      return json(202, created(request.headers.get("x-job-id"), "none", 0));
    }
    if (url.pathname === "/ws/progress") {
      const pair = new WebSocketPair();
      this.ctx.acceptWebSocket(pair[1]);
      pair[1].send(JSON.stringify({ type: "snapshot", seq: this.seq, payload: {} }));
      return new Response(null, { status: 101, webSocket: pair[0] });
    }
    // POST /api/jobs/{id}/events: one flat event.
    const event = await request.json();
    this.seq += 1;
    if (this.writes) {
      await this.ctx.storage.put("state", { seq: this.seq, processedCount: event.processedCount });
    }
    const frame = JSON.stringify({ type: "job_progress", seq: this.seq, payload: event });
    for (const ws of this.ctx.getWebSockets()) ws.send(frame);
    return json(202, { seq: this.seq });
  }

  webSocketClose(ws) {
    ws.close();
  }
}

function json(status, body) {
  return new Response(JSON.stringify(body), {
    status,
    headers: { "content-type": "application/json" },
  });
}

// The router: one object per job, named by its id, as in the gateway.
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
