/**
 * The subscriber's machine, a port of the Rust core's `client.rs`: pure (time,
 * frames, socket and HTTP outcomes and the random draws for jitter come in as inputs;
 * what to do goes out as effects), so the conformance vectors drive it with no
 * socket. One addition for browsers: `offline`/`online` inputs, so that no
 * reconnect spins while there is no network and one goes out as soon as there is.
 *
 * Jitter comes from `random()` draws in [0, 1), one per reconnect wait.
 *
 * Lifecycle: `connecting → authenticating → active → reconnecting{attempt} →
 * completed | failed{reason}`, with a `syncing` detour through
 * `GET /api/job-state/{jobId}` when reconnects keep failing, and `offline`.
 * @module
 */

import { closeAction, CloseCode } from "./closeCode.js";
import { asCount, CANCEL, decode, LITERAL_PING, parseStatus, type JobStatus } from "./protocol.js";

/** Settings; {@link defaultConfig} gives the core's production values. */
export interface ClientConfig {
  jobId: string;
  clientId: string | undefined;
  /** First backoff step, ms. */
  backoffBase: number;
  /** Largest backoff step, ms. */
  backoffCap: number;
  /** Consecutive failed reconnects before a state sync. */
  syncAfter: number;
  /** Tries of one state sync (on 5xx or network errors). */
  syncTries: number;
  /** How often to ping while connected, ms. */
  pingInterval: number;
}

/** The core's defaults for a job. */
export function defaultConfig(jobId: string, clientId?: string): ClientConfig {
  return {
    jobId,
    clientId,
    backoffBase: 1000,
    backoffCap: 30_000,
    syncAfter: 3,
    syncTries: 3,
    pingInterval: 30_000,
  };
}

/** How a watched job ended. */
export type JobEnd =
  /** `job_complete` then 1000 (`summary` is `undefined` if the frame never arrived). */
  | { kind: "succeeded"; summary: unknown }
  /** `error` then 4001. */
  | { kind: "failed"; code: string; message: string }
  /** 1001. */
  | { kind: "canceled" };

/** Why the client gave up watching while the job may still run. */
export type FailReason =
  /** 401 on upgrade or state sync: the token is wrong or expired. */
  | { kind: "unauthorized" }
  /** 1008: tokens revoked; get a new one from the app's backend. */
  | { kind: "revoked" }
  /** 404: no such job (or it ended more than 24 h ago). */
  | { kind: "not_found" }
  /** 400/426 on upgrade: the request itself is wrong. */
  | { kind: "bad_request"; status: number }
  /** A close code that says "don't reconnect" (1002, 1003, 1009). */
  | { kind: "refused"; code: number }
  /** 4000: a newer socket of the same `clientId` took over. */
  | { kind: "superseded" }
  /** The user stopped watching. */
  | { kind: "stopped" };

/** The client's lifecycle. */
export type State =
  | { name: "idle" }
  /** The upgrade request is out. */
  | { name: "connecting"; attempt: number }
  /** Upgraded; waiting for the first frame (the snapshot). */
  | { name: "authenticating"; attempt: number }
  /** Following the job live. */
  | { name: "active" }
  /** Waiting until `at` (ms since the epoch) to reconnect. */
  | { name: "reconnecting"; attempt: number; at: number }
  /** Asking `GET /api/job-state` while the socket cannot be had. */
  | { name: "syncing"; attempt: number; tries: number; at: number | undefined }
  /** No network: waiting for `online`, no timer. */
  | { name: "offline"; attempt: number }
  | { name: "completed"; end: JobEnd }
  | { name: "failed"; reason: FailReason };

/** What the app shows. */
export interface View {
  status: JobStatus | undefined;
  processedCount: number;
  totalCount: number | undefined;
  /** Seq of the last job event seen. */
  seq: number | undefined;
  /** The last snapshot proved continuity. */
  recovered: boolean;
  /** The latest current item or message. */
  message: string | undefined;
}

/** Everything that happens to a client. */
export type Input =
  | { type: "start" }
  /** The upgrade answered 101. */
  | { type: "opened" }
  /** The upgrade answered with an HTTP error. */
  | { type: "refused"; status: number; retryAfter?: number | undefined }
  /** A text frame. */
  | { type: "frame"; text: string }
  /** The socket closed (`code` undefined: dropped without a close frame, 1006) or never opened. */
  | { type: "closed"; code?: number | undefined }
  /** The timer fired. */
  | { type: "tick" }
  /** A state sync answered (`status` 0 for a network error). */
  | { type: "state_fetched"; status: number; body?: string | undefined }
  /** The user asked to cancel the job. */
  | { type: "cancel" }
  /** The user stopped watching. */
  | { type: "stop" }
  /** The network went away (the browser's `offline` event). */
  | { type: "offline" }
  /** The network is back. */
  | { type: "online" };

/** Where to connect. The token is a secret: never log these. */
export interface ConnectParams {
  jobId: string;
  token: string;
  clientId: string | undefined;
  lastSeq: number | undefined;
}

/** What the shell must do, in order. */
export type Effect =
  | { type: "connect"; params: ConnectParams }
  | { type: "send"; text: string }
  | { type: "close"; code: number }
  /** Feed `tick` at this time (replaces any earlier timer; `undefined`: none). A timer that fired is spent: a tick is answered with this again while a deadline remains. */
  | { type: "set_timer"; at: number | undefined }
  /** `GET /api/job-state/{jobId}` with this bearer token. */
  | { type: "fetch_state"; token: string }
  | { type: "progress"; view: View }
  /** A new token arrived (persist it for later watches). */
  | { type: "token_updated"; expiresAt: number }
  /** The client reached `completed` or `failed`. */
  | { type: "finished"; state: State }
  /** The client waits to reconnect at `at`: `minMs` plus a jitter up to `maxMs`. */
  | { type: "waiting"; attempt: number; minMs: number; maxMs: number; at: number }
  /** The first snapshot of a socket that resumed with `lastSeq` (after its `progress`). */
  | { type: "resumed"; from: number; recovered: boolean };

/** `undefined` sorts before any number, as Rust's `Option` does. */
const atLeast = (a: number | undefined, b: number | undefined): boolean =>
  b === undefined || (a !== undefined && a >= b);

/** The subscriber machine. */
export class Client {
  private _state: State = { name: "idle" };
  private _view: View;
  private _token: string;
  private _tokenExpiresAt: number | undefined;
  /** The terminal event seen on this socket, awaiting its close. */
  private ending: JobEnd | undefined;
  private nextPing: number | undefined;
  private timer: number | undefined;
  /** The `lastSeq` the current socket presented, until its first frame. */
  private presented: number | undefined;
  /** Minimum wait the server asked for (`Retry-After`), ms. */
  private retryAfter = 0;

  /**
   * @param random draws in [0, 1) for the jitter (`Math.random` in the shell)
   * @param lastSeq resume point the app kept from an earlier watch
   */
  constructor(
    readonly config: ClientConfig,
    token: string,
    tokenExpiresAt: number | undefined,
    private readonly random: () => number,
    lastSeq?: number,
  ) {
    this._token = token;
    this._tokenExpiresAt = tokenExpiresAt;
    this._view = {
      status: undefined,
      processedCount: 0,
      totalCount: undefined,
      seq: lastSeq,
      recovered: false,
      message: undefined,
    };
  }

  get state(): State {
    return this._state;
  }
  get view(): View {
    return { ...this._view };
  }
  get token(): string {
    return this._token;
  }
  get tokenExpiresAt(): number | undefined {
    return this._tokenExpiresAt;
  }
  get isFinished(): boolean {
    return this._state.name === "completed" || this._state.name === "failed";
  }

  /** The one entry point: `now` in ms since the epoch. */
  handle(now: number, input: Input): Effect[] {
    const out: Effect[] = [];
    // A fired timer is spent: after a tick a deadline still ahead is stated
    // again, so a shell whose timer fired early (Node's timers run on a clock
    // that can be a millisecond ahead of `Date.now()`) is told it rather than
    // left without one.
    const spent = input.type === "tick";
    if (!this.isFinished) this.step(now, input, out);
    const timer = this.nextDeadline();
    if ((spent && timer !== undefined) || timer !== this.timer) {
      this.timer = timer;
      out.push({ type: "set_timer", at: timer });
    }
    return out;
  }

  private step(now: number, input: Input, out: Effect[]): void {
    const st = this._state;
    switch (input.type) {
      case "start":
        if (st.name === "idle") this.connect(0, out);
        return;
      case "opened":
        if (st.name === "connecting") {
          this._state = { name: "authenticating", attempt: st.attempt };
          // SPEC §3: a first frame at once. Until a socket has sent one, the
          // runtime keeps the connection open after the room closes it.
          out.push({ type: "send", text: LITERAL_PING });
          this.nextPing = now + this.config.pingInterval;
        }
        return;
      case "refused":
        if (st.name === "connecting") this.refused(now, st.attempt, input.status, input.retryAfter, out);
        return;
      case "frame": {
        if (st.name !== "authenticating" && st.name !== "active") return;
        const first = st.name === "authenticating";
        if (first) {
          this._state = { name: "active" };
          this.retryAfter = 0;
        }
        const recovered = this.frame(input.text, out);
        if (first && this.presented !== undefined && recovered !== undefined) {
          out.push({ type: "resumed", from: this.presented, recovered });
        }
        if (first) this.presented = undefined;
        return;
      }
      case "closed":
        if (st.name === "connecting" || st.name === "authenticating") {
          this.closed(now, st.attempt + 1, input.code, out);
        } else if (st.name === "active") {
          this.closed(now, 0, input.code, out);
        }
        return;
      case "tick":
        this.tick(now, out);
        return;
      case "state_fetched":
        if (st.name === "syncing" && st.at === undefined) {
          this.synced(now, st.attempt, st.tries, input.status, input.body, out);
        }
        return;
      case "cancel":
        if (st.name === "active") out.push({ type: "send", text: CANCEL });
        return;
      case "stop":
        if (st.name === "active" || st.name === "authenticating" || st.name === "connecting") {
          out.push({ type: "close", code: CloseCode.Completed });
        }
        this.finish({ name: "failed", reason: { kind: "stopped" } }, out);
        return;
      case "offline":
        this.offline(out);
        return;
      case "online":
        if (st.name === "offline") this.connect(st.attempt, out);
        return;
    }
  }

  private tick(now: number, out: Effect[]): void {
    const st = this._state;
    if (
      (st.name === "active" || st.name === "authenticating") &&
      this.nextPing !== undefined &&
      this.nextPing <= now
    ) {
      out.push({ type: "send", text: LITERAL_PING });
      this.nextPing = now + this.config.pingInterval;
    } else if (st.name === "reconnecting" && st.at <= now) {
      if (st.attempt > 0 && st.attempt % Math.max(this.config.syncAfter, 1) === 0) {
        this._state = { name: "syncing", attempt: st.attempt, tries: 1, at: undefined };
        out.push({ type: "fetch_state", token: this._token });
      } else {
        this.connect(st.attempt, out);
      }
    } else if (st.name === "syncing" && st.at !== undefined && st.at <= now) {
      this._state = { name: "syncing", attempt: st.attempt, tries: st.tries + 1, at: undefined };
      out.push({ type: "fetch_state", token: this._token });
    }
  }

  /** The network went away: drop the socket as lost and wait for `online`, no timer. */
  private offline(out: Effect[]): void {
    const st = this._state;
    let attempt: number;
    switch (st.name) {
      case "active":
        attempt = 0;
        break;
      case "connecting":
      case "authenticating":
        attempt = st.attempt + 1;
        break;
      case "reconnecting":
      case "syncing":
        this._state = { name: "offline", attempt: st.attempt };
        return;
      default:
        return;
    }
    out.push({ type: "close", code: CloseCode.Completed });
    this.nextPing = undefined;
    const end = this.ending;
    this.ending = undefined;
    if (end) {
      // As after a lost close: the terminal event arrived, the job is over.
      this.finish({ name: "completed", end }, out);
    } else {
      this._state = { name: "offline", attempt };
    }
  }

  private connect(attempt: number, out: Effect[]): void {
    this._state = { name: "connecting", attempt };
    this.ending = undefined;
    this.nextPing = undefined;
    this.presented = this._view.seq;
    out.push({
      type: "connect",
      params: {
        jobId: this.config.jobId,
        token: this._token,
        clientId: this.config.clientId,
        lastSeq: this._view.seq,
      },
    });
  }

  private refused(
    now: number,
    attempt: number,
    status: number,
    retryAfter: number | undefined,
    out: Effect[],
  ): void {
    if (status === 401) {
      this.finish({ name: "failed", reason: { kind: "unauthorized" } }, out);
    } else if (status === 404) {
      this.finish({ name: "failed", reason: { kind: "not_found" } }, out);
    } else if (status === 429) {
      this.retryAfter = (retryAfter ?? 1) * 1000;
      this.backoff(now, attempt + 1, this.retryAfter, out);
    } else if (status >= 400 && status < 500) {
      this.finish({ name: "failed", reason: { kind: "bad_request", status } }, out);
    } else {
      this.backoff(now, attempt + 1, 0, out);
    }
  }

  private closed(now: number, attempt: number, code: number | undefined, out: Effect[]): void {
    const c = code ?? CloseCode.Abnormal;
    this.nextPing = undefined;
    const action = closeAction(c);
    switch (action.kind) {
      case "done": {
        let end: JobEnd;
        if (c === CloseCode.Canceled) {
          end = { kind: "canceled" };
        } else {
          end =
            this.ending ??
            (c === CloseCode.JobFailed
              ? { kind: "failed", code: "job_failed", message: "" }
              : { kind: "succeeded", summary: undefined });
        }
        this.ending = undefined;
        this._view.status =
          end.kind === "succeeded" ? "completed" : end.kind === "failed" ? "failed" : "canceled";
        out.push({ type: "progress", view: this.view });
        this.finish({ name: "completed", end }, out);
        return;
      }
      case "stop":
        this.finish(
          {
            name: "failed",
            reason: c === CloseCode.Superseded ? { kind: "superseded" } : { kind: "refused", code: c },
          },
          out,
        );
        return;
      case "reauthenticate":
        this.finish({ name: "failed", reason: { kind: "revoked" } }, out);
        return;
      case "reconnect": {
        const end = this.ending;
        this.ending = undefined;
        if (end) {
          // The terminal event arrived and only its close was lost: the job is
          // over, and a reconnect would only replay the end.
          this.finish({ name: "completed", end }, out);
        } else {
          this.backoff(now, attempt, Math.max(action.minDelay, this.retryAfter), out);
        }
        return;
      }
    }
  }

  /**
   * Full-jitter exponential backoff: `floor + ⌊r · (ceiling + 1)⌋` with `r` in
   * [0, 1) and `ceiling = min(cap, base·2^attempt)`.
   */
  private backoff(now: number, attempt: number, floor: number, out: Effect[]): void {
    const step = this.config.backoffBase * 2 ** Math.min(attempt, 20);
    const ceiling = Math.min(step, this.config.backoffCap);
    const r = this.random();
    const draw = Number.isNaN(r) ? 0 : Math.min(Math.max(r, 0), 1 - Number.EPSILON / 2);
    const jitter = Math.min(Math.floor(draw * (ceiling + 1)), ceiling);
    const at = now + floor + jitter;
    this._state = { name: "reconnecting", attempt, at };
    out.push({ type: "waiting", attempt, minMs: floor, maxMs: floor + ceiling, at });
  }

  private synced(
    now: number,
    attempt: number,
    tries: number,
    status: number,
    body: string | undefined,
    out: Effect[],
  ): void {
    if (status === 200) {
      let v: unknown;
      try {
        v = body === undefined ? undefined : JSON.parse(body);
      } catch {
        v = undefined;
      }
      if (typeof v === "object" && v !== null && !Array.isArray(v)) {
        const o = v as Record<string, unknown>;
        const jobStatus = parseStatus(o.status);
        const seq = asCount(o.seq);
        // Progress never goes backwards in the view.
        if (atLeast(seq, this._view.seq)) {
          this._view.seq = seq;
          this._view.status = jobStatus;
          const p = asCount(o.processedCount);
          if (p !== undefined) this._view.processedCount = p;
          this._view.totalCount = asCount(o.totalCount);
          out.push({ type: "progress", view: this.view });
        }
        if (jobStatus === "completed") {
          return this.finish({ name: "completed", end: { kind: "succeeded", summary: undefined } }, out);
        }
        if (jobStatus === "failed") {
          return this.finish(
            { name: "completed", end: { kind: "failed", code: "job_failed", message: "" } },
            out,
          );
        }
        if (jobStatus === "canceled") {
          return this.finish({ name: "completed", end: { kind: "canceled" } }, out);
        }
      }
      this.connect(attempt, out);
    } else if (status === 401) {
      this.finish({ name: "failed", reason: { kind: "unauthorized" } }, out);
    } else if (status === 404) {
      this.finish({ name: "failed", reason: { kind: "not_found" } }, out);
    } else if (status >= 400 && status < 500) {
      this.finish({ name: "failed", reason: { kind: "bad_request", status } }, out);
    } else if (tries < this.config.syncTries) {
      const wait = this.config.backoffBase * 2 ** Math.min(tries, 20);
      this._state = { name: "syncing", attempt, tries, at: now + wait };
    } else {
      this.connect(attempt, out);
    }
  }

  /** Applies one frame to the view; returns `recovered` if it was a snapshot. */
  private frame(text: string, out: Effect[]): boolean | undefined {
    const frame = decode(text);
    if (!frame) return undefined;
    const v = this._view;
    if (frame.seq !== undefined) v.seq = v.seq === undefined ? frame.seq : Math.max(v.seq, frame.seq);
    const m = frame.message;
    switch (m.type) {
      case "snapshot":
        v.status = m.status;
        v.processedCount = m.processedCount;
        v.totalCount = m.totalCount;
        v.recovered = m.recovered;
        break;
      case "job_started":
        v.status = "processing";
        if (m.totalCount !== undefined) v.totalCount = m.totalCount;
        v.message = m.message;
        break;
      case "job_progress":
        v.status = "processing";
        v.processedCount = Math.max(v.processedCount, m.processedCount);
        if (m.totalCount !== undefined) v.totalCount = m.totalCount;
        v.message = m.currentItem ?? m.message;
        break;
      case "job_complete":
        this.ending = { kind: "succeeded", summary: m.summary };
        break;
      case "error":
        // Only a job's error carries a seq; one refusing our message does not.
        if (frame.seq === undefined) return undefined;
        this.ending = { kind: "failed", code: m.code, message: m.message };
        break;
      case "token_refresh":
        this._token = m.token;
        this._tokenExpiresAt = m.expiresAt;
        out.push({ type: "token_updated", expiresAt: m.expiresAt });
        return undefined;
      case "pong":
        return undefined;
    }
    out.push({ type: "progress", view: this.view });
    return m.type === "snapshot" ? m.recovered : undefined;
  }

  private finish(state: State, out: Effect[]): void {
    this._state = state;
    this.nextPing = undefined;
    out.push({ type: "finished", state });
  }

  private nextDeadline(): number | undefined {
    const st = this._state;
    if (st.name === "active" || st.name === "authenticating") return this.nextPing;
    if (st.name === "reconnecting") return st.at;
    if (st.name === "syncing") return st.at;
    return undefined;
  }
}
