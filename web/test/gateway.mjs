// The real Worker in local workerd for the browser test, started as the Rust
// e2e fixture does (gateway/e2e/src/gateway.rs): `wrangler dev --local` on a
// free loopback port with its own config, secret and persistence directory,
// in its own process group under a watchdog that kills the group when this
// process ends in any way. `stop()` kills the group by its id.
import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { randomUUID } from "node:crypto";

export const ROOT = resolve(import.meta.dirname ?? new URL(".", import.meta.url).pathname, "../..");
const START_TIMEOUT_MS = 90_000;
const STOP_GRACE_MS = 5_000;

/** Kills the group when the pipe on its stdin closes (this process stopped or died). */
const WATCHDOG = `
"$@" </dev/null &
read -r _ || true
trap '' TERM
kill -TERM 0 2>/dev/null
sleep 5
kill -KILL 0 2>/dev/null
`;

export function freePort() {
  return new Promise((res, rej) => {
    const s = createServer();
    s.on("error", rej);
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => res(port));
    });
  });
}

/** wrangler.toml without [build] (the Worker is built already) and with an absolute `main`. */
function testConfig() {
  const text = readFileSync(join(ROOT, "wrangler.toml"), "utf8");
  const out = [];
  let skipping = false;
  for (const line of text.split("\n")) {
    if (/^\s*\[/.test(line)) skipping = /^\s*\[build\]\s*$/.test(line);
    if (skipping) continue;
    const main = /^main\s*=\s*"([^"]+)"/.exec(line);
    out.push(main ? `main = ${JSON.stringify(join(ROOT, main[1]))}` : line);
  }
  return out.join("\n");
}

/** Starts a gateway; resolves once `GET /healthz` answers. */
export async function startGateway() {
  if (!existsSync(join(ROOT, "build/index.js"))) {
    throw new Error("build/index.js is missing: run scripts/build-worker.sh (scripts/test.sh does)");
  }
  const wrangler = join(ROOT, "node_modules/.bin/wrangler");
  if (!existsSync(wrangler)) throw new Error(`${wrangler} missing: run scripts/setup.sh`);
  const dir = mkdtempSync(join(tmpdir(), "gateway-browser-"));
  const secret = `browser-test-${randomUUID()}`;
  writeFileSync(join(dir, "wrangler.toml"), testConfig());
  writeFileSync(join(dir, ".dev.vars"), `PRODUCER_SECRET=${secret}\n`);
  const port = await freePort();
  const inspector = await freePort();
  const log = join(dir, "wrangler.log");
  const fd = openSync(log, "w");
  const child = spawn(
    "sh",
    ["-c", WATCHDOG, "browser-wrangler", wrangler, "dev", "--local", "--config", "wrangler.toml",
      "--ip", "127.0.0.1", "--port", String(port), "--inspector-port", String(inspector),
      "--persist-to", join(dir, "state"), "--show-interactive-dev-session", "false"],
    {
      cwd: dir,
      detached: true, // its own process group, killed as a whole
      stdio: ["pipe", fd, fd],
      env: {
        ...process.env,
        WRANGLER_SEND_METRICS: "false",
        WRANGLER_HIDE_BANNER: "true",
        CLOUDFLARE_CF_FETCH_ENABLED: "false",
        WRANGLER_LOG_PATH: join(dir, "wrangler-debug-logs"),
        NO_COLOR: "1",
      },
    },
  );
  const exited = new Promise((r) => child.once("exit", r));
  const base = `http://127.0.0.1:${port}`;
  const gateway = {
    base,
    secret,
    log: () => readFileSync(log, "utf8"),
    async stop() {
      child.stdin.end();
      const group = -child.pid;
      try {
        process.kill(group, "SIGTERM");
      } catch {
        // already gone
      }
      const deadline = Date.now() + STOP_GRACE_MS;
      for (;;) {
        try {
          process.kill(group, 0);
        } catch {
          break; // the group is gone
        }
        if (Date.now() > deadline) {
          try {
            process.kill(group, "SIGKILL");
          } catch {
            break;
          }
        }
        await new Promise((r) => setTimeout(r, 50));
      }
      await Promise.race([exited, new Promise((r) => setTimeout(r, 1000))]);
      rmSync(dir, { recursive: true, force: true });
    },
  };
  const started = Date.now();
  for (;;) {
    const ok = await fetch(`${base}/healthz`).then((r) => r.ok, () => false);
    if (ok) return gateway;
    if (child.exitCode !== null || Date.now() - started > START_TIMEOUT_MS) {
      const text = gateway.log();
      await gateway.stop();
      throw new Error(`the gateway did not become healthy:\n${text}`);
    }
    await new Promise((r) => setTimeout(r, 250));
  }
}
