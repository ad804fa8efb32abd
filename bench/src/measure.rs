//! One turn of the suite against one target, and the gateway-only figures
//! (storage reads per upgrade, bytes written per event, alarm wakes).

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};

use crate::client::{self, Job, Producer};
use crate::stats::{Metric, Results};
use crate::target::{Kind, Target};

/// How many of each operation a turn makes.
#[derive(Debug, Clone, Copy)]
pub struct Sizes {
    /// Upgrades on new jobs.
    pub cold: usize,
    /// Upgrades on one warm job.
    pub warm: usize,
    /// Literal pings.
    pub pings: usize,
    /// Jobs upgraded once after the restart.
    pub restart: usize,
    /// Events per fan-out size.
    pub events: usize,
    /// Length of the closed-loop throughput run.
    pub loop_for: Duration,
    /// Every measurement; `false`: the breakdown's (cold and warm upgrades,
    /// one event to 1 subscriber, the producer's 202, events per second;
    /// no pings, no larger fan-out, no restart).
    pub full: bool,
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// One `upgrade_timing` line of the gateway's log.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    /// The room read its storage (one read).
    pub cold: bool,
    /// `storage_ms`: the read.
    pub storage_ms: f64,
    /// `total_ms`: the room's handler, request to response.
    pub total_ms: f64,
}

/// The `upgrade_timing` lines of a stretch of the gateway's log.
#[must_use]
pub fn upgrade_timings(log: &str) -> Vec<Timing> {
    log.lines()
        .filter(|l| l.contains("\"upgrade_timing\""))
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l.get(l.find('{')?..)?).ok())
        .map(|v| Timing {
            cold: v["cold"].as_bool() == Some(true),
            storage_ms: v["storage_ms"].as_f64().unwrap_or(f64::NAN),
            total_ms: v["total_ms"].as_f64().unwrap_or(f64::NAN),
        })
        .collect()
}

/// What a turn saw in the gateway's log (reads, timings) and made
/// (upgrades).
#[derive(Debug, Default, Clone)]
pub struct Reads {
    /// Reads during warm upgrades.
    pub warm_reads: usize,
    /// Warm upgrades made.
    pub warm_upgrades: usize,
    /// Reads during the upgrades after a restart.
    pub restart_reads: usize,
    /// Upgrades made after a restart.
    pub restart_upgrades: usize,
    /// `upgrade_timing` lines of the warm upgrades.
    pub warm: Vec<Timing>,
    /// … of the upgrades after a restart.
    pub restart: Vec<Timing>,
}

/// One turn: every metric of [`Metric`] against `target`, then a restart and
/// the cold upgrades that follow it.
///
/// # Errors
/// When the target refuses or stops answering.
pub async fn turn(
    target: &mut Target,
    sizes: Sizes,
    results: &mut Results,
) -> Result<Reads, String> {
    let kind = target.kind;
    let addr = target.addr();
    let mut producer = Producer::connect(&addr, target.secret()).await?;
    let mut reads = Reads::default();

    // Jobs with one event each, upgraded for the first time after the restart.
    let mut kept = Vec::new();
    for _ in 0..sizes.restart {
        let job = producer.create_job().await?;
        producer.event(&job, 1, false, 1).await?;
        kept.push(job);
    }

    // Cold: a job just created, its first upgrade.
    let (mut create, mut open, mut first) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..sizes.cold {
        let started = Instant::now();
        let job = producer.create_job().await?;
        create.push(ms(started.elapsed()));
        let (o, f) = upgrade(&addr, &job).await?;
        open.push(o);
        first.push(f);
    }
    results.add(Metric::CreateJob, kind, create);
    results.add(Metric::ColdOpen, kind, open);
    results.add(Metric::ColdFirstFrame, kind, first);

    // Warm: one job, upgraded again and again.
    let job = producer.create_job().await?;
    upgrade(&addr, &job).await?;
    let mark = target.log().len();
    let (mut open, mut first) = (Vec::new(), Vec::new());
    for _ in 0..sizes.warm {
        let (o, f) = upgrade(&addr, &job).await?;
        open.push(o);
        first.push(f);
    }
    if kind == Kind::Gateway {
        let seen = upgrade_timings(target.log().get(mark..).unwrap_or_default());
        reads.warm_upgrades = sizes.warm;
        reads.warm_reads = seen.iter().filter(|t| t.cold).count();
        reads.warm = seen;
    }
    results.add(Metric::WarmOpen, kind, open);
    results.add(Metric::WarmFirstFrame, kind, first);

    // Literal ping round trips on one socket.
    if sizes.full {
        let (mut ws, _) = client::open(&addr, &job).await?;
        client::next_text(&mut ws).await?;
        let mut rtt = Vec::new();
        for _ in 0..sizes.pings {
            let started = Instant::now();
            client::send(&mut ws, r#"{"type":"ping"}"#).await?;
            let pong = client::next_text(&mut ws).await?;
            if pong != r#"{"type":"pong"}"# {
                return Err(format!("{}: ping answered with {pong}", kind.name()));
            }
            rtt.push(ms(started.elapsed()));
        }
        results.add(Metric::Ping, kind, rtt);
        client::close(ws).await;
    }

    // Fan-out to 1, 16, 32 subscribers (the seed keeps one socket per job).
    for (n, metric) in [
        (1, Metric::Fanout1),
        (16, Metric::Fanout16),
        (32, Metric::Fanout32),
    ] {
        if n > 1 && (!kind.fans_out() || !sizes.full) {
            continue;
        }
        let job = producer.create_job().await?;
        let (seen_tx, mut seen) = mpsc::unbounded_channel();
        let mut stops = Vec::new();
        let mut tasks = Vec::new();
        for _ in 0..n {
            let (mut ws, _) = client::open(&addr, &job).await?;
            client::next_text(&mut ws).await?;
            let (stop, stopped) = oneshot::channel();
            tasks.push(client::watch(ws, seen_tx.clone(), stopped));
            stops.push(stop);
        }
        let (mut last, mut acks) = (Vec::new(), Vec::new());
        for k in 1..=sizes.events {
            let started = Instant::now();
            let seq = producer.event(&job, k as u64, false, k).await?;
            acks.push(ms(started.elapsed()));
            let mut arrived = 0;
            let mut latest = started;
            while arrived < n {
                let (s, at) = tokio::time::timeout(client::TIMEOUT, seen.recv())
                    .await
                    .map_err(|_| format!("{}: event {seq} not delivered", kind.name()))?
                    .ok_or("subscribers ended")?;
                if s == seq {
                    arrived += 1;
                    latest = latest.max(at);
                }
            }
            last.push(ms(latest.duration_since(started)));
        }
        results.add(metric, kind, last);
        if n == 1 {
            results.add(Metric::Ack, kind, acks);
            // Closed loop with the one subscriber still watching.
            let started = Instant::now();
            let mut count = 0_u64;
            while started.elapsed() < sizes.loop_for {
                producer
                    .event(&job, sizes.events as u64 + 1 + count, false, 0)
                    .await?;
                count += 1;
            }
            #[allow(clippy::cast_precision_loss)]
            let eps = count as f64 / started.elapsed().as_secs_f64();
            results.add(Metric::EventsPerSecond, kind, vec![eps]);
        }
        for stop in stops {
            let _ = stop.send(());
        }
        for task in tasks {
            let _ = task.await;
        }
    }

    // A restart: every object leaves memory; the kept jobs' state is on disk.
    drop(producer);
    if !sizes.full {
        return Ok(reads);
    }
    let started = Instant::now();
    target.restart()?;
    results.add(Metric::Restart, kind, vec![ms(started.elapsed())]);
    let (mut open, mut first) = (Vec::new(), Vec::new());
    for job in &kept {
        let (o, f) = upgrade(&addr, job).await?;
        open.push(o);
        first.push(f);
    }
    if kind == Kind::Gateway {
        let seen = upgrade_timings(&target.log());
        reads.restart_upgrades = kept.len();
        reads.restart_reads = seen.iter().filter(|t| t.cold).count();
        reads.restart = seen;
    }
    results.add(Metric::RestartOpen, kind, open);
    results.add(Metric::RestartFirstFrame, kind, first);
    Ok(reads)
}

/// One upgrade: (ms to the 101, ms to the first frame); then a clean close.
async fn upgrade(addr: &str, job: &Job) -> Result<(f64, f64), String> {
    let started = Instant::now();
    let (mut ws, open) = client::open(addr, job).await?;
    client::next_text(&mut ws).await?;
    let first = ms(started.elapsed());
    client::close(ws).await;
    Ok((ms(open), first))
}

/// Bytes written per event at a point of a long job.
#[derive(Debug, Clone)]
pub struct RecordPoint {
    /// The event's number in the job.
    pub event: usize,
    /// Bytes its record write wrote (the hot state and the chunk of
    /// remembered ids its id went into).
    pub record_bytes: Option<u64>,
    /// Events per second over the window that ended at it.
    pub events_per_second: f64,
}

/// Producers sending at once in [`record_growth`], so a long job takes
/// minutes, not a quarter of an hour, on a busy machine.
const GROWTH_PRODUCERS: u64 = 4;

/// Sends events with `eventId`s to one new job, up to the last checkpoint (from
/// [`GROWTH_PRODUCERS`] producers at once) and reads the stored record's size
/// at each checkpoint from the object's SQLite file.
///
/// # Errors
/// When the target refuses an event.
pub async fn record_growth(
    target: &Target,
    checkpoints: &[usize],
) -> Result<Vec<RecordPoint>, String> {
    let mut first = Producer::connect(&target.addr(), target.secret()).await?;
    let job = first.create_job().await?;
    let mut producers = vec![first];
    for _ in 1..GROWTH_PRODUCERS {
        producers.push(Producer::connect(&target.addr(), target.secret()).await?);
    }
    let mut points = Vec::new();
    let mut sent = 0_usize;
    for &checkpoint in checkpoints {
        let started = Instant::now();
        let window = checkpoint.saturating_sub(sent);
        // processedCount may not decrease, and concurrent producers arrive in
        // any order: every event of a window carries the same count.
        let calls = producers.iter_mut().enumerate().map(|(i, p)| {
            let job = job.clone();
            let from = sent;
            async move {
                let mut k = from + 1 + i;
                while k <= checkpoint {
                    p.event(&job, from as u64, true, k).await?;
                    k += GROWTH_PRODUCERS as usize;
                }
                Ok::<_, String>(())
            }
        });
        for r in futures_util::future::join_all(calls).await {
            r?;
        }
        sent = checkpoint;
        #[allow(clippy::cast_precision_loss)]
        let eps = window as f64 / started.elapsed().as_secs_f64();
        points.push(RecordPoint {
            event: checkpoint,
            record_bytes: record_bytes(&target.state_dir(), &job.id, checkpoint),
            events_per_second: eps,
        });
    }
    Ok(points)
}

/// The Durable Object SQLite files under a persistence directory.
fn sqlite_files(state: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![state.to_owned()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "sqlite") {
                out.push(path);
            }
        }
    }
    out
}

fn sqlite(file: &Path, query: &str) -> Option<String> {
    let out = Command::new("sqlite3")
        .arg("-readonly")
        .arg(file)
        .arg(query)
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
        .filter(|s| !s.is_empty())
}

/// Bytes the record write of event `event` wrote in the object that holds
/// `job_id`: the hot state (key `job`) and the chunk of remembered ids that
/// holds its `eventId` (the storage layout of `gateway_core::room::storage`;
/// a build with the old layout, all ids inside `job`, has no such chunk).
fn record_bytes(state: &Path, job_id: &str, event: usize) -> Option<u64> {
    let owner = format!(
        "SELECT 1 FROM _cf_KV WHERE key = 'job' AND instr(CAST(value AS TEXT), '{job_id}') > 0;"
    );
    let file = sqlite_files(state)
        .into_iter()
        .find(|f| sqlite(f, &owner).is_some())?;
    let id = crate::client::event_id(event);
    let query = format!(
        "SELECT (SELECT length(value) FROM _cf_KV WHERE key = 'job') + \
         COALESCE((SELECT length(value) FROM _cf_KV WHERE key <> 'job' \
         AND instr(CAST(value AS TEXT), '\"{id}\"') > 0), 0);"
    );
    sqlite(&file, &query).and_then(|s| s.parse().ok())
}

/// The alarm time stored by the object that holds `job_id` (workerd keeps
/// it in the object's SQLite metadata).
#[must_use]
pub fn stored_alarm(state: &Path, job_id: &str) -> Option<String> {
    let owner = format!(
        "SELECT 1 FROM _cf_KV WHERE key = 'job' AND instr(CAST(value AS TEXT), '{job_id}') > 0;"
    );
    let file = sqlite_files(state)
        .into_iter()
        .find(|f| sqlite(f, &owner).is_some())?;
    sqlite(&file, "SELECT value FROM _cf_METADATA WHERE key = 1;")
}

/// An idle job with 8 healthy subscribers (each sends the literal ping on
/// open and every 30 s, as the SPEC's clients do), sampled while the rest
/// of the benchmark runs: every change of the stored alarm is one wake.
pub struct AlarmSample {
    started: Instant,
    stops: Vec<oneshot::Sender<()>>,
    poll: tokio::task::JoinHandle<usize>,
    stop_poll: oneshot::Sender<()>,
}

impl AlarmSample {
    /// Creates the job and its subscribers on `target` (its own gateway).
    ///
    /// # Errors
    /// When the target refuses.
    pub async fn start(target: &Target) -> Result<Self, String> {
        let mut producer = Producer::connect(&target.addr(), target.secret()).await?;
        let job = producer.create_job().await?;
        let mut stops = Vec::new();
        for _ in 0..8 {
            let (mut ws, _) = client::open(&target.addr(), &job).await?;
            client::next_text(&mut ws).await?;
            let (stop, mut stopped) = oneshot::channel::<()>();
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(Duration::from_secs(30));
                loop {
                    tokio::select! {
                        _ = &mut stopped => break,
                        _ = tick.tick() => {
                            if client::send(&mut ws, r#"{"type":"ping"}"#).await.is_err() {
                                return;
                            }
                        }
                        msg = futures_util::StreamExt::next(&mut ws) => {
                            if !matches!(msg, Some(Ok(_))) { return; }
                        }
                    }
                }
                client::close(ws).await;
            });
            stops.push(stop);
        }
        let state = target.state_dir();
        let (stop_poll, mut poll_stopped) = oneshot::channel::<()>();
        let poll = tokio::spawn(async move {
            let mut last = None;
            let mut changes = 0;
            loop {
                let now = {
                    let (state, id) = (state.clone(), job.id.clone());
                    tokio::task::spawn_blocking(move || stored_alarm(&state, &id))
                        .await
                        .ok()
                        .flatten()
                };
                if now.is_some() && last.is_some() && now != last {
                    changes += 1;
                }
                if now.is_some() {
                    last = now;
                }
                tokio::select! {
                    _ = &mut poll_stopped => return changes,
                    () = tokio::time::sleep(Duration::from_secs(1)) => {}
                }
            }
        });
        Ok(Self {
            started: Instant::now(),
            stops,
            poll,
            stop_poll,
        })
    }

    /// Ends the sample: (alarm wakes seen, seconds sampled).
    pub async fn finish(self) -> (usize, f64) {
        let seconds = self.started.elapsed().as_secs_f64();
        let _ = self.stop_poll.send(());
        let wakes = self.poll.await.unwrap_or(0);
        for stop in self.stops {
            let _ = stop.send(());
        }
        (wakes, seconds)
    }
}

// The breakdown's metrics, by slot.
const CREATE: usize = 0;
const COLD: usize = 1;
const WARM: usize = 2;
const WARM_FIRST: usize = 3;
const DELIVERY: usize = 4;
const ACK: usize = 5;
const SLOTS: usize = 6;

/// A new order of `n` targets for each round (seeded: reproducible), so
/// that no target always follows another.
struct Shuffle(StdRng);

impl Shuffle {
    fn order(&mut self, n: usize) -> Vec<usize> {
        let mut order: Vec<usize> = (0..n).collect();
        order.shuffle(&mut self.0);
        order
    }
}

/// The breakdown's suite, interleaved one operation at a time: each cold
/// upgrade, warm upgrade and event goes to every target, in a new random
/// order each round, before the next, and the closed loop alternates in
/// short windows the same way, so that a busy machine (or one slow second)
/// weighs on every build alike. Adds one sample per metric and target to
/// `results`.
///
/// # Errors
/// When a target refuses or stops answering.
pub async fn interleaved(
    targets: &[Target],
    sizes: Sizes,
    seed: u64,
    results: &mut Results,
) -> Result<(), String> {
    let name = |i: usize| targets[i].kind.name();
    let mut producers = Vec::new();
    for t in targets {
        producers.push(Producer::connect(&t.addr(), t.secret()).await?);
    }
    let n = targets.len();
    // samples[target][slot]
    let mut samples = vec![vec![Vec::<f64>::new(); SLOTS]; n];
    let mut shuffle = Shuffle(StdRng::seed_from_u64(seed));
    let add = |samples: &mut Vec<Vec<Vec<f64>>>, i: usize, slot: usize, x: f64| {
        samples[i][slot].push(x);
    };

    for _ in 0..sizes.cold {
        for i in shuffle.order(n) {
            let started = Instant::now();
            let job = producers[i]
                .create_job()
                .await
                .map_err(|e| format!("{}: {e}", name(i)))?;
            add(&mut samples, i, CREATE, ms(started.elapsed()));
            let (o, _) = upgrade(&targets[i].addr(), &job)
                .await
                .map_err(|e| format!("{}: {e}", name(i)))?;
            add(&mut samples, i, COLD, o);
        }
    }

    let mut jobs = Vec::new();
    for (i, p) in producers.iter_mut().enumerate() {
        let job = p.create_job().await?;
        upgrade(&targets[i].addr(), &job).await?;
        jobs.push(job);
    }
    for _ in 0..sizes.warm {
        for i in shuffle.order(n) {
            let (o, f) = upgrade(&targets[i].addr(), &jobs[i])
                .await
                .map_err(|e| format!("{}: {e}", name(i)))?;
            add(&mut samples, i, WARM, o);
            add(&mut samples, i, WARM_FIRST, f);
        }
    }

    // One subscriber per target, on a job of its own.
    let mut watchers = Vec::new();
    for (i, p) in producers.iter_mut().enumerate() {
        let job = p.create_job().await?;
        let (mut ws, _) = client::open(&targets[i].addr(), &job).await?;
        client::next_text(&mut ws).await?;
        let (seen_tx, seen) = mpsc::unbounded_channel();
        let (stop, stopped) = oneshot::channel();
        let task = client::watch(ws, seen_tx, stopped);
        watchers.push((job, seen, stop, task));
    }
    for k in 1..=sizes.events {
        for i in shuffle.order(n) {
            let (job, seen, _, _) = &mut watchers[i];
            let started = Instant::now();
            let seq = producers[i]
                .event(job, k as u64, false, k)
                .await
                .map_err(|e| format!("{}: {e}", name(i)))?;
            add(&mut samples, i, ACK, ms(started.elapsed()));
            loop {
                let (s, at) = tokio::time::timeout(client::TIMEOUT, seen.recv())
                    .await
                    .map_err(|_| format!("{}: event {seq} not delivered", name(i)))?
                    .ok_or("subscriber ended")?;
                if s == seq {
                    add(&mut samples, i, DELIVERY, ms(at.duration_since(started)));
                    break;
                }
            }
        }
    }
    // Closed loop in windows of 250 ms, alternating.
    let window = Duration::from_millis(250);
    let windows = (sizes.loop_for.as_millis() / window.as_millis()).max(1);
    let mut counts = vec![(0_u64, Duration::ZERO); n];
    let mut next = sizes.events as u64 + 1;
    for _ in 0..windows {
        for i in shuffle.order(n) {
            let started = Instant::now();
            while started.elapsed() < window {
                producers[i].event(&watchers[i].0, next, false, 0).await?;
                next += 1;
                counts[i].0 += 1;
            }
            counts[i].1 += started.elapsed();
        }
    }
    for (_, _, stop, task) in watchers {
        let _ = stop.send(());
        let _ = task.await;
    }

    for (i, t) in targets.iter().enumerate() {
        let mut s = std::mem::take(&mut samples[i]);
        let kind = t.kind;
        results.add(Metric::Ack, kind, s.pop().unwrap_or_default());
        results.add(Metric::Fanout1, kind, s.pop().unwrap_or_default());
        results.add(Metric::WarmFirstFrame, kind, s.pop().unwrap_or_default());
        results.add(Metric::WarmOpen, kind, s.pop().unwrap_or_default());
        results.add(Metric::ColdOpen, kind, s.pop().unwrap_or_default());
        results.add(Metric::CreateJob, kind, s.pop().unwrap_or_default());
        #[allow(clippy::cast_precision_loss)]
        let eps = counts[i].0 as f64 / counts[i].1.as_secs_f64();
        results.add(Metric::EventsPerSecond, kind, vec![eps]);
    }
    Ok(())
}
