// The demo page: asks its backend for a job ({jobId, wsUrl, token}; never the
// producer secret) and watches it with progress-gateway-client.
import { watchJob } from "/client/index.js";

const $ = (id) => document.getElementById(id);
/** What the page rendered, for the browser test: every processedCount shown and every connection event. */
const record = (window.demo = { shown: [], events: [], outcome: null });

function log(text) {
  record.events.push(text);
  const li = document.createElement("li");
  const time = document.createElement("time");
  time.textContent = new Date().toLocaleTimeString();
  li.append(time, text);
  $("events").append(li);
  li.scrollIntoView({ block: "nearest" });
}

function render(view) {
  const total = view.totalCount;
  const fraction = total ? Math.min(view.processedCount / total, 1) : 0;
  record.shown.push(view.processedCount);
  $("bar").style.width = `${(fraction * 100).toFixed(1)}%`;
  $("bar").setAttribute("aria-valuenow", String(Math.round(fraction * 100)));
  $("count").textContent = String(view.processedCount);
  $("total").textContent = total === undefined ? "?" : String(total);
  $("percent").textContent = String(Math.round(fraction * 100));
  if (view.status) $("status").textContent = view.status;
  $("message").textContent = view.message ?? "";
}

function describe(e) {
  switch (e.type) {
    case "connecting":
      return e.resumeFrom === undefined ? "connecting" : `connecting, resuming after seq ${e.resumeFrom}`;
    case "connected":
      return "connected";
    case "disconnected":
      return `disconnected (${e.code ?? "no close frame"})`;
    case "reconnecting":
      return `reconnecting in ${Math.max(0, e.at - Date.now())} ms (attempt ${e.attempt + 1})`;
    case "resumed":
      return `resumed from seq ${e.from}, recovered=${e.recovered}`;
    case "refused":
      return `upgrade refused (${e.status})`;
    case "state_fetched":
      return `state sync answered ${e.status}`;
    case "token_refreshed":
      return `token refreshed, valid until ${new Date(e.expiresAt).toLocaleTimeString()}`;
    default:
      return e.type === "offline" ? "browser offline: waiting for the network" : "browser online";
  }
}

function showOutcome({ ending }) {
  const result = $("result");
  let kind;
  let text;
  if (ending.kind === "job") {
    kind = ending.end.kind === "succeeded" ? "completed" : ending.end.kind;
    if (ending.end.kind === "succeeded") text = `Completed: ${JSON.stringify(ending.end.summary ?? {})}`;
    else if (ending.end.kind === "failed") text = `Failed: ${ending.end.code} ${ending.end.message}`;
    else text = "Canceled";
  } else {
    kind = "gave_up";
    text = `Stopped watching: ${ending.reason.kind}`;
  }
  record.outcome = kind;
  $("card").className = kind;
  $("status").textContent = kind === "gave_up" ? "stopped" : kind;
  result.textContent = text;
  result.className = "shown";
  $("cancel").disabled = true;
}

async function main() {
  const r = await fetch("/api/demo-job", { method: "POST" });
  if (!r.ok) {
    $("status").textContent = "no job";
    $("message").textContent = await r.text();
    return;
  }
  const job = await r.json();
  $("job").textContent = job.jobId;
  if (job.totalCount) $("total").textContent = String(job.totalCount);
  const handle = watchJob({
    wsUrl: job.wsUrl,
    token: job.token,
    tokenExpiresAt: job.expiresAt,
    stateUrl: job.stateUrl,
    clientId: crypto.randomUUID(),
    onProgress: render,
    onEvent: (e) => log(describe(e)),
    onStateChange: (s) => ($("cancel").disabled = s.name !== "active"),
  });
  $("cancel").onclick = () => {
    if (handle.cancel()) log("cancel sent");
  };
  showOutcome(await handle.outcome);
}

main().catch((e) => {
  $("status").textContent = "error";
  $("message").textContent = String(e);
});
