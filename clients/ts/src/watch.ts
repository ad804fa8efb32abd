/**
 * The thin shell around the {@link Client} machine: it turns a WebSocket,
 * timers, `fetch` and the browser's `offline`/`online` events into inputs and
 * carries out each effect, in order. Every decision (backoff, close-code
 * policy, resume, token adoption, state sync) is the machine's.
 * @module
 */

import {
  Client,
  defaultConfig,
  type ConnectParams,
  type Effect,
  type FailReason,
  type Input,
  type JobEnd,
  type State,
  type View,
} from "./machine.js";
import { jobIdOf, jobStateUrl, progressUrl } from "./urls.js";

/** The part of the WHATWG `WebSocket` the client uses (browsers, Node ≥ 22, `ws`). */
export interface WebSocketLike {
  readonly readyState: number;
  send(data: string): void;
  close(code?: number, reason?: string): void;
  onopen: ((ev: any) => void) | null;
  onmessage: ((ev: { data: unknown }) => void) | null;
  onclose: ((ev: { code?: number }) => void) | null;
  onerror: ((ev: any) => void) | null;
}

/** A `WebSocket` constructor (`globalThis.WebSocket`, or `ws`'s default export in Node 20). */
export type WebSocketConstructor = new (url: string) => WebSocketLike;

/** Things a UI may show besides the view and the state. The machine has already decided. */
export type WatchEvent =
  | { type: "connecting"; resumeFrom: number | undefined }
  | { type: "connected" }
  /** The upgrade answered an HTTP error (only `ws` in Node reports the status; browsers see a close). */
  | { type: "refused"; status: number }
  /** An open or opening socket ended (`code` undefined: no close frame). */
  | { type: "disconnected"; code: number | undefined }
  /** The next attempt goes out at `at` (ms since the epoch). */
  | { type: "reconnecting"; attempt: number; at: number }
  /** The first snapshot after resuming with `lastSeq`. */
  | { type: "resumed"; from: number; recovered: boolean }
  /** `GET /api/job-state` answered (`status` 0: network error). */
  | { type: "state_fetched"; status: number }
  | { type: "token_refreshed"; expiresAt: number }
  | { type: "offline" }
  | { type: "online" };

/** How a watch ended. */
export type Ending =
  /** The job ended and the client knows how. */
  | { kind: "job"; end: JobEnd }
  /** The client stopped watching while the job may still run. */
  | { kind: "gave_up"; reason: FailReason };

/** What the handle's promise resolves to. */
export interface Outcome {
  ending: Ending;
  view: View;
  /** The token held at the end (refreshed ones included): keep it to watch again. */
  token: string;
  tokenExpiresAt: number | undefined;
}

/** Where `online`/`offline` events come from (a `window`). */
export interface NetworkEvents {
  addEventListener(type: "online" | "offline", listener: () => void): void;
  removeEventListener(type: "online" | "offline", listener: () => void): void;
  readonly navigator?: { readonly onLine?: boolean };
}

/** Options of {@link watchJob}. */
export interface WatchOptions {
  /** `wsUrl` of the create answer: the upgrade URL with `jobId`, without the token. */
  wsUrl: string;
  /** The subscriber token (a secret: the client never logs it). */
  token: string;
  /** Stable id of this app instance, so that a reconnect supersedes the old socket. */
  clientId?: string;
  /** Resume point kept from an earlier watch of the same job. */
  lastSeq?: number;
  /** `expiresAt` of the token, if known. */
  tokenExpiresAt?: number;
  /** `stateUrl` of the create answer; derived from `wsUrl` when absent. */
  stateUrl?: string;
  onProgress?: (view: View) => void;
  onStateChange?: (state: State) => void;
  /** A new token arrived; persist it if the app may watch again. */
  onTokenRefresh?: (token: string, expiresAt: number) => void;
  onEvent?: (event: WatchEvent) => void;
  /** Defaults to `globalThis.WebSocket` (pass `ws` in Node 20). */
  WebSocket?: WebSocketConstructor;
  /** Defaults to `globalThis.fetch`. */
  fetch?: typeof fetch;
  /** Defaults to `globalThis` where it has `addEventListener` (browsers); `null`: none. */
  network?: NetworkEvents | null;
  /** Longest wait for an upgrade or a state-sync answer, ms (default 10 s). */
  ioTimeout?: number;
  pingInterval?: number;
  backoffBase?: number;
  backoffCap?: number;
  syncAfter?: number;
}

/** A running watch. */
export interface WatchHandle {
  /** Asks the gateway to cancel the job; `false` when no socket is live to carry it. */
  cancel(): boolean;
  /** Stops watching (the job runs on); the outcome resolves with `stopped`. */
  close(): void;
  /** Resolves once the machine finishes; never rejects. */
  readonly outcome: Promise<Outcome>;
  readonly view: View;
  readonly state: State;
}

const ignore = (): void => {};

/** Watches one job until it ends or {@link WatchHandle.close} is called. */
export function watchJob(options: WatchOptions): WatchHandle {
  const Socket = options.WebSocket ?? (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket;
  if (!Socket) throw new TypeError("no WebSocket here: pass options.WebSocket (e.g. the ws package)");
  const doFetch = options.fetch ?? globalThis.fetch.bind(globalThis);
  const jobId = jobIdOf(options.wsUrl);
  const stateUrl = options.stateUrl ?? jobStateUrl(options.wsUrl, jobId);
  const ioTimeout = options.ioTimeout ?? 10_000;
  const config = defaultConfig(jobId, options.clientId);
  if (options.pingInterval !== undefined) config.pingInterval = options.pingInterval;
  if (options.backoffBase !== undefined) config.backoffBase = options.backoffBase;
  if (options.backoffCap !== undefined) config.backoffCap = options.backoffCap;
  if (options.syncAfter !== undefined) config.syncAfter = options.syncAfter;
  const client = new Client(config, options.token, options.tokenExpiresAt, Math.random, options.lastSeq);
  const g = globalThis as unknown as Partial<NetworkEvents>;
  const network =
    options.network === undefined ? (typeof g.addEventListener === "function" ? (g as NetworkEvents) : null) : options.network;

  let socket: WebSocketLike | undefined;
  let timer: ReturnType<typeof setTimeout> | undefined;
  let ioTimer: ReturnType<typeof setTimeout> | undefined;
  /** Bumped for every socket or request, so answers of abandoned ones are ignored. */
  let generation = 0;
  let lastState = JSON.stringify(client.state);
  let resolve!: (o: Outcome) => void;
  const outcome = new Promise<Outcome>((r) => (resolve = r));
  const emit = (e: WatchEvent) => options.onEvent?.(e);

  const feed = (input: Input): void => {
    const effects = client.handle(Date.now(), input);
    for (const effect of effects) apply(effect);
    const state = JSON.stringify(client.state);
    if (state !== lastState) {
      lastState = state;
      options.onStateChange?.(client.state);
    }
  };

  const dropSocket = (code?: number): void => {
    const s = socket;
    socket = undefined;
    generation++;
    clearTimeout(ioTimer);
    if (!s) return;
    // No-ops rather than null: `ws` throws an "error" event nobody listens to
    // (closing a socket that is still connecting raises one).
    s.onopen = s.onmessage = s.onerror = s.onclose = ignore;
    try {
      if (code !== undefined) s.close(code);
      else s.close();
    } catch {
      // already closed, or closed before it opened: nothing to release
    }
  };

  const open = (params: ConnectParams): void => {
    dropSocket();
    const gen = generation;
    const url = progressUrl(options.wsUrl, params);
    emit({ type: "connecting", resumeFrom: params.lastSeq });
    let refusedStatus: number | undefined;
    let opened = false;
    let s: WebSocketLike;
    try {
      s = new Socket(url);
    } catch {
      // Never surface this error: its text may quote the URL, which holds the token.
      queueMicrotask(() => gen === generation && feed({ type: "closed" }));
      return;
    }
    socket = s;
    ioTimer = setTimeout(() => {
      if (gen !== generation || opened) return;
      dropSocket();
      emit({ type: "disconnected", code: undefined });
      feed({ type: "closed" });
    }, ioTimeout);
    s.onopen = () => {
      if (gen !== generation) return;
      opened = true;
      clearTimeout(ioTimer);
      emit({ type: "connected" });
      feed({ type: "opened" });
    };
    s.onmessage = (ev) => {
      if (gen === generation && typeof ev.data === "string") feed({ type: "frame", text: ev.data });
    };
    s.onerror = (ev: { message?: unknown }) => {
      // ws reports a refused upgrade as "Unexpected server response: 429"; browsers tell nothing.
      const m = typeof ev?.message === "string" ? /Unexpected server response: (\d{3})/.exec(ev.message) : null;
      if (m) refusedStatus = Number(m[1]);
    };
    s.onclose = (ev) => {
      if (gen !== generation) return;
      socket = undefined;
      generation++;
      clearTimeout(ioTimer);
      if (!opened && refusedStatus !== undefined) {
        emit({ type: "refused", status: refusedStatus });
        feed({ type: "refused", status: refusedStatus });
        return;
      }
      const code = typeof ev.code === "number" && ev.code !== 1005 && ev.code !== 1006 ? ev.code : undefined;
      emit({ type: "disconnected", code });
      feed({ type: "closed", code });
    };
  };

  const fetchState = (token: string): void => {
    const gen = ++generation;
    const abort = new AbortController();
    ioTimer = setTimeout(() => abort.abort(), ioTimeout);
    const answer = (status: number, body?: string) => {
      clearTimeout(ioTimer);
      if (gen !== generation) return;
      emit({ type: "state_fetched", status });
      feed({ type: "state_fetched", status, body });
    };
    doFetch(stateUrl, { headers: { authorization: `Bearer ${token}` }, signal: abort.signal }).then(
      async (r) => answer(r.status, r.status === 200 ? await r.text().catch(() => undefined) : undefined),
      () => answer(0),
    );
  };

  const apply = (effect: Effect): void => {
    switch (effect.type) {
      case "connect":
        open(effect.params);
        break;
      case "send":
        try {
          socket?.send(effect.text);
        } catch {
          // a failed send surfaces as the socket's close
        }
        break;
      case "close":
        dropSocket(effect.code);
        break;
      case "set_timer":
        clearTimeout(timer);
        timer =
          effect.at === undefined
            ? undefined
            : setTimeout(() => feed({ type: "tick" }), Math.max(0, effect.at - Date.now()));
        break;
      case "fetch_state":
        fetchState(effect.token);
        break;
      case "progress":
        options.onProgress?.(effect.view);
        break;
      case "waiting":
        emit({ type: "reconnecting", attempt: effect.attempt, at: effect.at });
        break;
      case "resumed":
        emit({ type: "resumed", from: effect.from, recovered: effect.recovered });
        break;
      case "token_updated":
        emit({ type: "token_refreshed", expiresAt: effect.expiresAt });
        options.onTokenRefresh?.(client.token, effect.expiresAt);
        break;
      case "finished":
        finish(effect.state);
        break;
    }
  };

  const onOffline = () => {
    emit({ type: "offline" });
    feed({ type: "offline" });
  };
  const onOnline = () => {
    emit({ type: "online" });
    feed({ type: "online" });
  };

  const finish = (state: State): void => {
    clearTimeout(timer);
    dropSocket();
    network?.removeEventListener("offline", onOffline);
    network?.removeEventListener("online", onOnline);
    const ending: Ending =
      state.name === "completed"
        ? { kind: "job", end: state.end }
        : { kind: "gave_up", reason: state.name === "failed" ? state.reason : { kind: "stopped" } };
    resolve({ ending, view: client.view, token: client.token, tokenExpiresAt: client.tokenExpiresAt });
  };

  network?.addEventListener("offline", onOffline);
  network?.addEventListener("online", onOnline);
  feed({ type: "start" });
  if (network?.navigator?.onLine === false) onOffline();

  return {
    cancel() {
      if (client.state.name !== "active") return false;
      feed({ type: "cancel" });
      return true;
    },
    close() {
      feed({ type: "stop" });
    },
    outcome,
    get view() {
      return client.view;
    },
    get state() {
      return client.state;
    },
  };
}
