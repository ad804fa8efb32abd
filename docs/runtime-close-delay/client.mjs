// Times, for each scenario, how long after the object's close the client sees
// (a) the close frame and (b) the end of its TCP connection, for a socket that
// sent the literal ping right after opening and for one that never sent a
// frame. No dependencies: a raw WebSocket client on node:http, which answers
// the server's close frame at once, as browsers do, and then waits for the
// server to end the connection (RFC 6455 §7.1.1).
//
//   node client.mjs [http://127.0.0.1:8787] [scenario ...]

import http from "node:http";
import crypto from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";

const args = process.argv.slice(2);
const base = args[0]?.startsWith("http") ? args.shift() : "http://127.0.0.1:8787";
const WAIT_MS = 30_000;

const SCENARIOS = {
  // The object closes its hibernatable sockets: the baseline.
  "hibernate": { accept: "hibernate", how: "close" },
  // A text frame just before the close frame.
  "send-then-close": { accept: "hibernate", how: "send-close" },
  // As the baseline, then a request every second for 20 s keeps the object awake.
  "busy-object": { accept: "hibernate", how: "close", busyMs: 20_000 },
  // Close, then reset the whole object (ctx.abort()).
  "close-then-abort": { accept: "hibernate", how: "close-abort" },
  // The same, with ctx.abort() in an alarm 50 ms later: the close request is answered.
  "close-then-alarm-abort": { accept: "hibernate", how: "close-alarm-abort" },
  // ws.accept() instead of ctx.acceptWebSocket(): no hibernation.
  "no-hibernation": { accept: "plain", how: "close" },
  // Closed by the object right after the upgrade (a subscriber of an ended
  // job), timed from the 101: hibernatable, then plain.
  "close-on-open": { accept: "hibernate", closeOnOpen: true },
  "close-on-open-plain": { accept: "plain", closeOnOpen: true },
};

/** Opens a WebSocket and records what arrives on it. */
function open(path) {
  return new Promise((resolve, reject) => {
    const request = http.request(`${base}${path}`, {
      headers: {
        Connection: "Upgrade",
        Upgrade: "websocket",
        "Sec-WebSocket-Version": "13",
        "Sec-WebSocket-Key": crypto.randomBytes(16).toString("base64"),
      },
    });
    request.on("upgrade", (_response, socket, head) => resolve(new Socket(socket, head)));
    request.on("response", (r) => reject(new Error(`upgrade refused: ${r.statusCode}`)));
    request.on("error", reject);
    request.end();
  });
}

class Socket {
  constructor(socket, head) {
    this.socket = socket;
    this.buffer = head;
    this.texts = [];
    this.closeAt = null;
    this.closeCode = null;
    this.endAt = null;
    this.ended = new Promise((resolve) => socket.on("close", () => {
      this.endAt = performance.now();
      resolve();
    }));
    socket.on("data", (data) => {
      this.buffer = Buffer.concat([this.buffer, data]);
      this.parse();
    });
    socket.on("error", () => {});
    this.parse(); // frames that came with the 101
  }

  parse() {
    // Server frames are unmasked; the frames here are small.
    while (this.buffer.length >= 2) {
      const opcode = this.buffer[0] & 0x0f;
      let length = this.buffer[1] & 0x7f;
      let offset = 2;
      if (length === 126) {
        if (this.buffer.length < 4) return;
        length = this.buffer.readUInt16BE(2);
        offset = 4;
      }
      if (this.buffer.length < offset + length) return;
      const payload = this.buffer.subarray(offset, offset + length);
      this.buffer = this.buffer.subarray(offset + length);
      if (opcode === 0x1) this.texts.push(payload.toString());
      if (opcode === 0x8 && this.closeAt === null) {
        this.closeAt = performance.now();
        this.closeCode = payload.length >= 2 ? payload.readUInt16BE(0) : 1005;
        this.write(0x8, payload.subarray(0, 2)); // the closing handshake's answer
      }
    }
  }

  write(opcode, payload) {
    const mask = crypto.randomBytes(4);
    const masked = Buffer.from(payload.map((byte, i) => byte ^ mask[i % 4]));
    this.socket.write(Buffer.concat([Buffer.from([0x80 | opcode, 0x80 | payload.length]), mask, masked]));
  }

  send(text) {
    this.write(0x1, Buffer.from(text));
  }

  async nextText(ms = 2000) {
    const deadline = performance.now() + ms;
    while (this.texts.length === 0 && performance.now() < deadline) await sleep(5);
    return this.texts.shift();
  }
}

async function closedOnOpen(name, accept) {
  const room = `${name}-${Date.now()}`;
  const pinged = await open(`/ws?room=${room}&accept=${accept}&close=now`);
  pinged.trigger = performance.now();
  pinged.send('{"type":"ping"}');
  const silent = await open(`/ws?room=${room}&accept=${accept}&close=now`);
  silent.trigger = performance.now();
  await Promise.race([Promise.all([pinged.ended, silent.ended]), sleep(WAIT_MS)]);
  report(name, pinged, silent);
}

function report(name, pinged, silent) {
  const ms = (socket, at) =>
    at === null ? `> ${WAIT_MS} ms` : `${Math.max(0, Math.round(at - socket.trigger))} ms`;
  for (const [client, socket] of [["pinged on open", pinged], ["never pinged", silent]]) {
    console.log(
      [name, client, socket.closeCode ?? "none", ms(socket, socket.closeAt), ms(socket, socket.endAt)]
        .map(String).map((s, i) => s.padEnd([22, 15, 5, 12, 12][i])).join(" | "),
    );
    socket.socket.destroy();
  }
}

async function scenario(name, { accept, how, busyMs = 0, closeOnOpen = false }) {
  if (closeOnOpen) return closedOnOpen(name, accept);
  const room = `${name}-${Date.now()}`;
  const pinged = await open(`/ws?room=${room}&accept=${accept}`);
  pinged.send('{"type":"ping"}');
  const pong = await pinged.nextText();
  if (pong !== '{"type":"pong"}') throw new Error(`no literal pong: ${pong}`);
  const silent = await open(`/ws?room=${room}&accept=${accept}`);
  await sleep(500);

  const answer = await fetch(`${base}/close?room=${room}&how=${how}`);
  await answer.text();
  const trigger = performance.now();
  pinged.trigger = trigger;
  silent.trigger = trigger;
  let busy = Promise.resolve();
  if (busyMs > 0) {
    busy = (async () => {
      while (performance.now() - trigger < busyMs) {
        await sleep(1000);
        await (await fetch(`${base}/noop?room=${room}`)).text();
      }
    })();
  }
  const timeout = sleep(WAIT_MS);
  await Promise.race([Promise.all([pinged.ended, silent.ended]), timeout]);
  await busy;
  report(name, pinged, silent);
}

const chosen = args.length > 0 ? args : Object.keys(SCENARIOS);
console.log("scenario               | client          | code  | close frame  | connection end");
await Promise.all(chosen.map((name) => scenario(name, SCENARIOS[name])));
