/**
 * The URLs a subscriber calls, built from the create answer's `wsUrl`
 * (the upgrade URL with `jobId`, without the token). They hold the token or
 * lead to it: never log them.
 * @module
 */

import type { ConnectParams } from "./machine.js";

/** The job id in an upgrade URL. */
export function jobIdOf(wsUrl: string): string {
  const id = new URL(wsUrl).searchParams.get("jobId");
  if (!id) throw new TypeError("wsUrl has no jobId parameter: pass the wsUrl of the create answer");
  return id;
}

/** The upgrade URL: `wsUrl` with `jobId`, `token`, then `clientId` and `lastSeq` if set. */
export function progressUrl(wsUrl: string, p: ConnectParams): string {
  const url = new URL(wsUrl);
  url.search = "";
  const q = url.searchParams;
  q.set("jobId", p.jobId);
  q.set("token", p.token);
  if (p.clientId !== undefined) q.set("clientId", p.clientId);
  if (p.lastSeq !== undefined) q.set("lastSeq", String(p.lastSeq));
  return url.href;
}

/** `…/ws/progress?jobId=X` → `http(s)://…/api/job-state/X`. */
export function jobStateUrl(wsUrl: string, jobId: string): string {
  const url = new URL(wsUrl);
  url.protocol = url.protocol === "wss:" ? "https:" : "http:";
  url.pathname = url.pathname.replace(/ws\/progress\/?$/, "") + "api/job-state/" + encodeURIComponent(jobId);
  url.search = "";
  return url.href;
}
