// One Durable Object per `room`. GET /ws upgrades (hibernatable unless
// `accept=plain`; with `close=now` the socket gets a frame and is closed at
// once); GET /close closes every socket of the room the way `how` says; any
// other path is a no-op request that wakes the object.
import { DurableObject } from "cloudflare:workers";

export class Room extends DurableObject {
  constructor(ctx, env) {
    super(ctx, env);
    // The runtime answers the literal ping itself, without waking the object.
    ctx.setWebSocketAutoResponse(
      new WebSocketRequestResponsePair('{"type":"ping"}', '{"type":"pong"}'),
    );
    this.plain = [];
  }

  async fetch(request) {
    const url = new URL(request.url);
    if (url.pathname === "/ws") {
      const [client, server] = Object.values(new WebSocketPair());
      if (url.searchParams.get("accept") === "plain") {
        server.accept(); // no hibernation: the object stays in memory
        server.addEventListener("message", (event) => {
          if (event.data === '{"type":"ping"}') server.send('{"type":"pong"}');
        });
        this.plain.push(server);
      } else {
        this.ctx.acceptWebSocket(server);
      }
      if (url.searchParams.get("close") === "now") {
        // What a room does for a subscriber of a job that already ended.
        server.send('{"type":"job_complete"}');
        server.close(1000, "done");
      }
      return new Response(null, { status: 101, webSocket: client });
    }
    if (url.pathname === "/close") {
      const how = url.searchParams.get("how") ?? "close";
      const sockets = [...this.ctx.getWebSockets(), ...this.plain];
      for (const ws of sockets) {
        if (how === "send-close") ws.send('{"type":"bye"}');
        ws.close(1000, "done");
      }
      if (how === "close-alarm-abort") {
        // The same from an event of its own, so that this request's answer
        // is not lost: the alarm handler resets the object.
        await this.ctx.storage.setAlarm(Date.now() + 50);
      }
      if (how === "close-abort") {
        // Reset the whole object once the close frames are out: every
        // socket of the room goes with it.
        await scheduler.wait(100);
        this.ctx.abort("closed every socket");
      }
      return new Response(`closed ${sockets.length}\n`);
    }
    return new Response("awake\n");
  }

  async alarm() {
    this.ctx.abort("closed every socket");
  }

  webSocketMessage(ws, message) {}

  webSocketClose(ws, code, reason, wasClean) {
    // Closing again here (what the gateway's Worker does) changes nothing:
    // the socket is already closed in both directions.
    ws.close();
  }
}

export default {
  fetch(request, env) {
    const room = new URL(request.url).searchParams.get("room") ?? "default";
    return env.ROOM.get(env.ROOM.idFromName(room)).fetch(request);
  },
};
