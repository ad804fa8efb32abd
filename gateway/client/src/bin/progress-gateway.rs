//! `progress-gateway`: watch a job with a live progress bar, create jobs, emit
//! producer events, and a demo that shows a dropped socket being resumed.
//!
//! Exit status of `watch` and `demo`: 0 completed, 3 job failed, 4 job
//! canceled, 5 unauthorized or revoked, 6 job not found, 7 superseded, 8 other
//! refusal (bad request, protocol close code), 130 stopped with Ctrl-C;
//! 1 for a local or HTTP error, 2 for a usage error (also plain `http://` to a
//! host other than this machine without `--allow-plaintext`).
//!
//! A token or secret given as an argument is visible in `ps` and kept in the
//! shell history: the CLI warns once (never echoing it); the environment
//! variables `GATEWAY_TOKEN` and `PRODUCER_SECRET` are the safe way. Producer
//! text (message, current item, error, summary) passes through
//! [`gateway_client::printable`] before it reaches the terminal.

use clap::parser::ValueSource;
use clap::{ArgMatches, CommandFactory, FromArgMatches, Parser, Subcommand};
use gateway_client::gateway_core::api::{CreateJobResponse, EventsResponse};
use gateway_client::gateway_core::client::{FailReason, JobEnd, View};
use gateway_client::gateway_core::protocol::{EventKind, Pipeline, ProducerEvent};
use gateway_client::gateway_core::token::Token;
use gateway_client::{
    printable, watch, CreateJobRequest, Ending, Endpoint, Outcome, Producer, TlsConfig, WatchEvent,
    WatchHandle, WatchOptions,
};
use indicatif::{ProgressBar, ProgressStyle};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

#[derive(Parser)]
#[command(
    name = "progress-gateway",
    version,
    about = "Client of the progress gateway"
)]
struct Cli {
    /// Extra trusted root certificate(s), PEM, for an https:// gateway behind a
    /// private CA or with a self-signed certificate (the Mozilla roots stay trusted).
    #[arg(long, global = true, env = "GATEWAY_CA_CERT", value_name = "PEM file")]
    ca_cert: Option<PathBuf>,
    /// Allow plain http:// or ws:// to a host other than this machine: the
    /// token or producer secret and every frame then cross the network
    /// unencrypted. Loopback (localhost, 127.0.0.0/8, ::1) never needs it.
    #[arg(long, global = true)]
    allow_plaintext: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Watch a job live until it ends.
    Watch {
        /// Gateway base URL, e.g. http://127.0.0.1:8787 (local) or the https:// one of a deployment.
        #[arg(long, env = "GATEWAY_URL")]
        url: String,
        /// Job id.
        #[arg(long)]
        job: String,
        /// Subscriber token (prefer the env variable: arguments show in `ps`).
        #[arg(long, env = "GATEWAY_TOKEN", hide_env_values = true)]
        token: String,
        /// Stable client id: a later watch with the same id supersedes this one.
        #[arg(long)]
        client_id: Option<String>,
    },
    /// Create a job; prints the 202 answer as JSON (it holds the token).
    Create {
        /// Gateway base URL.
        #[arg(long, env = "GATEWAY_URL")]
        url: String,
        /// Producer secret.
        #[arg(long, env = "PRODUCER_SECRET", hide_env_values = true)]
        secret: String,
        /// batch_enrichment, csv_import or ai_scan.
        #[arg(long, value_parser = parse_pipeline)]
        pipeline: Pipeline,
        /// Items in all.
        #[arg(long)]
        total: Option<u64>,
        /// Own job id instead of a random one.
        #[arg(long)]
        job_id: Option<String>,
        /// Token lifetime in seconds (60 to 86400).
        #[arg(long)]
        ttl: Option<u64>,
    },
    /// Post one producer event (or a JSON array of them), e.g. '{"type":"progress","processedCount":3}'.
    Emit {
        /// Gateway base URL.
        #[arg(long, env = "GATEWAY_URL")]
        url: String,
        /// Producer secret.
        #[arg(long, env = "PRODUCER_SECRET", hide_env_values = true)]
        secret: String,
        /// Job id.
        #[arg(long)]
        job: String,
        /// The event as JSON (SPEC §3).
        event: String,
    },
    /// Create a job, produce it over HTTP, watch it, drop the socket once and resume.
    Demo {
        /// Gateway base URL.
        #[arg(long, env = "GATEWAY_URL")]
        url: String,
        /// Producer secret.
        #[arg(long, env = "PRODUCER_SECRET", hide_env_values = true)]
        secret: String,
        /// Items the simulated producer processes.
        #[arg(long, default_value_t = 25)]
        items: u64,
        /// Pause between items, in milliseconds.
        #[arg(long, default_value_t = 200)]
        delay_ms: u64,
        /// Drop the socket (no close frame) once this share of the items is seen.
        #[arg(long, default_value_t = 40)]
        drop_at_percent: u64,
    },
}

impl Command {
    fn url(&self) -> &str {
        match self {
            Self::Watch { url, .. }
            | Self::Create { url, .. }
            | Self::Emit { url, .. }
            | Self::Demo { url, .. } => url,
        }
    }

    /// What a plaintext connection would expose.
    fn credential(&self) -> &'static str {
        match self {
            Self::Watch { .. } => "the token",
            Self::Create { .. } | Self::Emit { .. } | Self::Demo { .. } => "the producer secret",
        }
    }
}

/// The arguments that hold a credential, with the variable to use instead.
const CREDENTIAL_ARGS: [(&str, &str, &str); 2] = [
    ("token", "--token", "GATEWAY_TOKEN"),
    ("secret", "--secret", "PRODUCER_SECRET"),
];

/// Warns (once, without the value) when a credential came from the command
/// line, where `ps` shows it to every user and the shell history keeps it.
fn warn_about_credential_arguments(matches: &ArgMatches) {
    let Some((_, sub)) = matches.subcommand() else {
        return;
    };
    for (id, flag, var) in CREDENTIAL_ARGS {
        if sub.ids().any(|i| i.as_str() == id)
            && sub.value_source(id) == Some(ValueSource::CommandLine)
        {
            eprintln!(
                "progress-gateway: warning: {flag} on the command line is visible to other \
                 users (ps) and kept in the shell history; set {var} in the environment instead"
            );
        }
    }
}

/// Refuses plain `http://`/`ws://` to a host other than this machine unless
/// `--allow-plaintext` is given. A base URL that does not parse is left to
/// the command, which reports it.
fn check_transport(command: &Command, allow_plaintext: bool) -> Result<(), String> {
    let Ok(endpoint) = Endpoint::parse(command.url()) else {
        return Ok(());
    };
    if endpoint.is_tls() || endpoint.is_loopback() || allow_plaintext {
        return Ok(());
    }
    Err(format!(
        "refusing unencrypted http:// or ws:// to {}: {} and every frame would cross \
         the network in clear text. Use the gateway's https:// (or wss://) URL, or pass \
         --allow-plaintext if the network to it is trusted",
        printable(&endpoint.host()),
        command.credential()
    ))
}

fn parse_pipeline(s: &str) -> Result<Pipeline, String> {
    [
        Pipeline::BatchEnrichment,
        Pipeline::CsvImport,
        Pipeline::AiScan,
    ]
    .into_iter()
    .find(|p| p.as_str() == s)
    .ok_or_else(|| "one of batch_enrichment, csv_import, ai_scan".to_owned())
}

/// Exit statuses (see the module docs).
mod exit {
    pub const ERROR: u8 = 1;
    pub const USAGE: u8 = 2;
    pub const FAILED: u8 = 3;
    pub const CANCELED: u8 = 4;
    pub const UNAUTHORIZED: u8 = 5;
    pub const NOT_FOUND: u8 = 6;
    pub const SUPERSEDED: u8 = 7;
    pub const REFUSED: u8 = 8;
    pub const STOPPED: u8 = 130;
}

#[tokio::main]
async fn main() -> ExitCode {
    let matches = Cli::command().get_matches();
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    warn_about_credential_arguments(&matches);
    if let Err(e) = check_transport(&cli.command, cli.allow_plaintext) {
        eprintln!("progress-gateway: {e}");
        return ExitCode::from(exit::USAGE);
    }
    let tls = match tls_config(cli.ca_cert.as_deref()) {
        Ok(tls) => tls,
        Err(e) => {
            eprintln!("progress-gateway: {e}");
            return ExitCode::from(exit::ERROR);
        }
    };
    let result = match cli.command {
        Command::Watch {
            url,
            job,
            token,
            client_id,
        } => {
            let options = WatchOptions {
                client_id,
                tls,
                ..WatchOptions::default()
            };
            follow(&url, &job, Token::from_string(token), options, None)
                .await
                .map(|o| report(&o))
        }
        Command::Create {
            url,
            secret,
            pipeline,
            total,
            job_id,
            ttl,
        } => create(&url, secret, &tls, pipeline, total, job_id, ttl).await,
        Command::Emit {
            url,
            secret,
            job,
            event,
        } => emit(&url, secret, &tls, &job, &event).await,
        Command::Demo {
            url,
            secret,
            items,
            delay_ms,
            drop_at_percent,
        } => demo(&url, secret, &tls, items, delay_ms, drop_at_percent).await,
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            // Gateway error bodies are outside text too.
            eprintln!("progress-gateway: {}", printable(&e.to_string()));
            ExitCode::from(exit::ERROR)
        }
    }
}

type CliResult = Result<u8, Box<dyn std::error::Error + Send + Sync>>;

/// The Mozilla roots, plus the certificates of `--ca-cert` if given.
fn tls_config(ca_cert: Option<&Path>) -> Result<TlsConfig, String> {
    let Some(path) = ca_cert else {
        return Ok(TlsConfig::default());
    };
    let pem = std::fs::read(path).map_err(|e| format!("--ca-cert {}: {e}", path.display()))?;
    TlsConfig::with_extra_roots_pem(&pem).map_err(|e| format!("--ca-cert {}: {e}", path.display()))
}

async fn create(
    url: &str,
    secret: String,
    tls: &TlsConfig,
    pipeline: Pipeline,
    total: Option<u64>,
    job_id: Option<String>,
    ttl: Option<u64>,
) -> CliResult {
    let producer = Producer::with_tls(url, secret, tls)?;
    let job = producer
        .create_job(&CreateJobRequest {
            pipeline,
            total_count: total,
            job_id,
            ttl_seconds: ttl,
            callback_url: None,
        })
        .await?;
    // The gateway's 202 body as it came (the token is for the caller).
    let out = CreateJobResponse {
        job_id: job.job_id,
        token: job.token.expose().to_owned(),
        expires_at: job.expires_at.0,
        ws_url: job.ws_url,
        state_url: job.state_url,
    };
    println!("{}", serde_json::to_string(&out)?);
    Ok(0)
}

async fn emit(url: &str, secret: String, tls: &TlsConfig, job: &str, event: &str) -> CliResult {
    let body: serde_json::Value =
        serde_json::from_str(event).map_err(|e| format!("the event is not JSON: {e}"))?;
    let seq = Producer::with_tls(url, secret, tls)?
        .post_raw(job, &body)
        .await?;
    println!("{}", serde_json::to_string(&EventsResponse { seq: seq.0 })?);
    Ok(0)
}

async fn demo(
    url: &str,
    secret: String,
    tls: &TlsConfig,
    items: u64,
    delay_ms: u64,
    drop_at_percent: u64,
) -> CliResult {
    let items = items.max(1);
    let producer = Producer::with_tls(url, secret, tls)?;
    let job = producer
        .create_job(&CreateJobRequest {
            total_count: Some(items),
            ..CreateJobRequest::new(Pipeline::CsvImport)
        })
        .await?;
    println!(
        "created job {} (csv_import, {items} items); token expires in {} min",
        job.job_id,
        job.expires_at
            .minus(gateway_client::now_ms())
            .0
            .div_euclid(60_000)
    );
    let feeder = tokio::spawn(simulate(
        producer.clone(),
        job.job_id.clone(),
        items,
        Duration::from_millis(delay_ms),
    ));
    let options = WatchOptions {
        token_expires_at: Some(job.expires_at),
        tls: tls.clone(),
        ..WatchOptions::default()
    };
    let drop_at = (items * drop_at_percent.min(100)).div_ceil(100).max(1);
    let outcome = follow(url, &job.job_id, job.token, options, Some(drop_at)).await;
    feeder.abort();
    if let Ok(Err(e)) = feeder.await {
        eprintln!("simulated producer: {e}");
    }
    Ok(report(&outcome?))
}

/// The simulated producer: started, progress 1..=items, complete.
async fn simulate(
    producer: Producer,
    job_id: String,
    items: u64,
    delay: Duration,
) -> Result<(), gateway_client::ProducerError> {
    let started = Instant::now();
    let event = |id: String, kind| ProducerEvent {
        event_id: Some(id),
        kind,
    };
    producer
        .post_event(
            &job_id,
            &event(
                "started".into(),
                EventKind::Started {
                    total_count: Some(items),
                    message: Some("importing".into()),
                },
            ),
        )
        .await?;
    for i in 1..=items {
        tokio::time::sleep(delay).await;
        producer
            .post_event(
                &job_id,
                &event(
                    format!("progress-{i}"),
                    EventKind::Progress {
                        processed_count: i,
                        total_count: Some(items),
                        current_item: Some(format!("row {i} of books.csv")),
                        message: None,
                    },
                ),
            )
            .await?;
    }
    let summary = serde_json::json!({
        "imported": items,
        "skipped": 0,
        "durationMs": u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
    });
    producer
        .post_event(
            &job_id,
            &event(
                "complete".into(),
                EventKind::Complete {
                    summary: summary.to_string(),
                },
            ),
        )
        .await?;
    Ok(())
}

/// Runs a watch with a live progress bar until it ends; Ctrl-C stops it.
/// With `drop_at`, the socket is dropped once when that many items are seen.
async fn follow(
    url: &str,
    job_id: &str,
    token: Token,
    mut options: WatchOptions,
    mut drop_at: Option<u64>,
) -> Result<Outcome, Box<dyn std::error::Error + Send + Sync>> {
    let handle = WatchHandle::new();
    let (tx, mut events) = mpsc::unbounded_channel();
    options.handle = handle.clone();
    options.events = Some(tx);
    let mut task = tokio::spawn({
        let (url, job_id) = (url.to_owned(), job_id.to_owned());
        async move { watch(&url, &job_id, token, options).await }
    });
    let latest = handle.latest();
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] [{bar:40.cyan/blue}] {pos}/{len} {percent:>3}% {msg}",
        )?
        .progress_chars("=> "),
    );
    bar.enable_steady_tick(Duration::from_millis(100));
    let mut seen = 0;
    let mut ctrl_c = std::pin::pin!(tokio::signal::ctrl_c());
    let mut interrupted = false;
    let result = loop {
        tokio::select! {
            r = &mut task => break r,
            _ = &mut ctrl_c, if !interrupted => {
                interrupted = true;
                say(&bar, "Ctrl-C: stopping");
                handle.stop();
            }
            Some(event) = events.recv() => {
                if let Some(line) = describe(&event) {
                    say(&bar, &line);
                }
            }
            v = latest.changed(seen) => {
                seen = v;
                let view = latest.get().view;
                show(&bar, &view);
                if drop_at.is_some_and(|n| view.processed_count >= n) {
                    drop_at = None;
                    handle.connection().drop_connection();
                }
            }
        }
    };
    // Events sent just before the end.
    while let Ok(event) = events.try_recv() {
        if let Some(line) = describe(&event) {
            say(&bar, &line);
        }
    }
    bar.finish_and_clear();
    Ok(result??)
}

/// A line above the bar; printed plainly when the bar is hidden (not a terminal).
fn say(bar: &ProgressBar, line: &str) {
    if bar.is_hidden() {
        println!("{line}");
    } else {
        bar.println(line);
    }
}

fn show(bar: &ProgressBar, view: &View) {
    if let Some(total) = view.total_count {
        bar.set_length(total);
    }
    bar.set_position(view.processed_count);
    let status = view.status.map_or("connecting", |s| s.as_str());
    bar.set_message(match &view.message {
        Some(m) => format!("{status}: {}", printable(m)),
        None => status.to_owned(),
    });
}

fn describe(event: &WatchEvent) -> Option<String> {
    let seq = |s: Option<gateway_client::gateway_core::protocol::Seq>| {
        s.map_or_else(|| "-".to_owned(), |s| s.0.to_string())
    };
    Some(match event {
        WatchEvent::Disconnected {
            code,
            seq: at,
            deliberate,
        } => {
            let code = code.map_or_else(|| "none (1006)".to_owned(), |c| c.to_string());
            let why = if *deliberate {
                " [connection control: TCP dropped, no close frame]"
            } else {
                ""
            };
            format!("socket closed at seq {}, close code {code}{why}", seq(*at))
        }
        WatchEvent::Reconnecting { at } => format!(
            "reconnecting in {} ms",
            at.minus(gateway_client::now_ms()).0
        ),
        WatchEvent::Resumed {
            from,
            at,
            recovered,
        } => format!(
            "connection dropped at seq {}; resumed at seq {}, recovered={recovered}",
            from.0,
            seq(*at)
        ),
        WatchEvent::Refused {
            status,
            retry_after,
        } => match retry_after {
            Some(s) => format!("upgrade refused: HTTP {status}, retry after {s} s"),
            None => format!("upgrade refused: HTTP {status}"),
        },
        WatchEvent::StateFetched { status } => format!("state sync answered HTTP {status}"),
        WatchEvent::TokenRefreshed { expires_at } => format!(
            "token refreshed (valid for {} more min)",
            expires_at.minus(gateway_client::now_ms()).0 / 60_000
        ),
        _ => return None,
    })
}

/// Prints the end and picks the exit status.
fn report(outcome: &Outcome) -> u8 {
    let v = &outcome.view;
    let counts = match v.total_count {
        Some(t) => format!("{}/{t} items", v.processed_count),
        None => format!("{} items", v.processed_count),
    };
    let last = v.seq.map_or(0, |s| s.0);
    match &outcome.ending {
        Ending::Job(JobEnd::Succeeded { summary }) => {
            println!("job completed ({counts}, last seq {last})");
            println!(
                "summary: {}",
                printable(summary.as_deref().unwrap_or("(none)"))
            );
            0
        }
        Ending::Job(JobEnd::Failed { code, message }) => {
            println!(
                "job failed ({counts}): {}: {}",
                printable(code),
                printable(message)
            );
            exit::FAILED
        }
        Ending::Job(JobEnd::Canceled) => {
            println!("job canceled ({counts})");
            exit::CANCELED
        }
        Ending::GaveUp(reason) => {
            let (text, code) = match reason {
                FailReason::Unauthorized => {
                    ("token refused (401): wrong or expired", exit::UNAUTHORIZED)
                }
                FailReason::Revoked => (
                    "tokens revoked (1008): get a new token from the backend",
                    exit::UNAUTHORIZED,
                ),
                FailReason::NotFound => ("no such job (404)", exit::NOT_FOUND),
                FailReason::Superseded => (
                    "superseded (4000): a newer watch with this client id took over",
                    exit::SUPERSEDED,
                ),
                FailReason::Stopped => ("stopped", exit::STOPPED),
                FailReason::BadRequest(_) | FailReason::Refused(_) => {
                    ("the gateway refused this client", exit::REFUSED)
                }
            };
            println!("{text} ({reason:?}; {counts}, last seq {last})");
            code
        }
    }
}
