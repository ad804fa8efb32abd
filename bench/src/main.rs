//! `gateway-bench`: the gateway side by side with JavaScript baselines, all in
//! local workerd on loopback (run through `scripts/bench.sh`, which builds
//! everything first). Each repeat runs one turn per target, in a rotated
//! order, so that a busy machine slows every target alike; the tables give
//! the median over repeats with min..max, and ratios.
//!
//! A full run ends with the breakdown: the floor, the shipped gateway and the
//! gateway's benchmark-only `bench-cuts` build (in `--cuts-build DIR`, which
//! `scripts/bench.sh` builds) run once with nothing left out and once per
//! piece left out (log lines, alarm writes, storage writes, all three),
//! interleaved one operation at a time, on a smaller suite
//! (`--breakdown-repeats N`, 5 by default).
//!
//! `gateway-bench [--smoke] [--repeats N] [--out DIR] [--targets gateway,floor,…]
//! [--gateway-build DIR] [--cuts-build DIR] [--no-breakdown] [--breakdown]
//! [--breakdown-repeats N] [--no-extras] [--quick]`: another build of the Worker, no breakdown, only
//! the breakdown (into `breakdown.md`), without the gateway-only figures,
//! smaller sizes, for A/B runs.

mod client;
mod measure;
mod plot;
mod stats;
mod target;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use measure::{AlarmSample, Reads, Sizes};
use stats::{num, Results};
use target::{Cut, Kind, Target};

struct Options {
    smoke: bool,
    quick: bool,
    repeats: usize,
    out: PathBuf,
    root: PathBuf,
    kinds: Vec<Kind>,
    gateway_build: Option<PathBuf>,
    cuts_build: PathBuf,
    /// Run the breakdown after the main suite.
    breakdown: bool,
    /// Run only the breakdown.
    breakdown_only: bool,
    breakdown_repeats: usize,
    /// Read the criterion results `scripts/bench.sh` just made.
    core: bool,
    extras: bool,
}

fn options() -> Result<Options, String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let root = root.canonicalize().unwrap_or(root);
    let mut o = Options {
        smoke: false,
        quick: false,
        repeats: 3,
        out: root.join("target/bench"),
        root,
        kinds: Kind::ALL.to_vec(),
        gateway_build: None,
        cuts_build: PathBuf::new(),
        breakdown: true,
        breakdown_only: false,
        breakdown_repeats: 5,
        core: false,
        extras: true,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--smoke" => o.smoke = true,
            "--no-extras" => o.extras = false,
            "--no-breakdown" => o.breakdown = false,
            "--core" => o.core = true,
            "--breakdown" => o.breakdown_only = true,
            "--breakdown-repeats" => {
                o.breakdown_repeats = args
                    .next()
                    .and_then(|n| n.parse().ok())
                    .filter(|n| *n > 0)
                    .ok_or("--breakdown-repeats needs a positive number")?;
            }
            "--cuts-build" => o.cuts_build = args.next().ok_or("--cuts-build needs a directory")?.into(),
            "--quick" => o.quick = true,
            "--repeats" => {
                o.repeats = args
                    .next()
                    .and_then(|n| n.parse().ok())
                    .filter(|n| *n > 0)
                    .ok_or("--repeats needs a positive number")?;
            }
            "--out" => o.out = args.next().ok_or("--out needs a directory")?.into(),
            "--targets" => {
                let list = args.next().ok_or("--targets needs a list")?;
                o.kinds = list
                    .split(',')
                    .map(|n| {
                        Kind::ALL
                            .into_iter()
                            .find(|k| k.id() == n)
                            .ok_or(format!("unknown target {n} (gateway, floor, floor-write, seed)"))
                    })
                    .collect::<Result<_, _>>()?;
            }
            "--gateway-build" => {
                o.gateway_build = Some(args.next().ok_or("--gateway-build needs a directory")?.into());
            }
            other => {
                return Err(format!(
                    "unknown argument {other}; usage: gateway-bench [--smoke] [--repeats N] [--out DIR] [--targets a,b] [--gateway-build DIR] [--cuts-build DIR] [--no-breakdown] [--breakdown] [--breakdown-repeats N] [--no-extras] [--quick]"
                ))
            }
        }
    }
    if o.cuts_build.as_os_str().is_empty() {
        o.cuts_build = o.root.join("target/bench/build-cuts");
    }
    // wrangler runs in a directory of its own: the builds' paths must be absolute.
    o.cuts_build = absolute(std::mem::take(&mut o.cuts_build));
    o.gateway_build = o.gateway_build.take().map(absolute);
    if o.smoke {
        o.repeats = 1;
    }
    if o.smoke || o.quick {
        o.breakdown = false;
    }
    Ok(o)
}

fn main() {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("bench: {e}");
            std::process::exit(1);
        }
    };
    if let Err(e) = runtime.block_on(run()) {
        eprintln!("bench: {e}");
        std::process::exit(1);
    }
}

async fn run() -> Result<(), String> {
    let o = options()?;
    std::fs::create_dir_all(&o.out).map_err(|e| format!("{}: {e}", o.out.display()))?;
    let sizes = if o.quick {
        Sizes {
            cold: 20,
            warm: 60,
            pings: 50,
            restart: 10,
            events: 40,
            loop_for: Duration::from_secs(2),
            full: true,
        }
    } else if o.smoke {
        Sizes {
            cold: 5,
            warm: 20,
            pings: 20,
            restart: 3,
            events: 10,
            loop_for: Duration::from_secs(1),
            full: true,
        }
    } else {
        Sizes {
            cold: 60,
            warm: 200,
            pings: 200,
            restart: 30,
            events: 100,
            loop_for: Duration::from_secs(4),
            full: true,
        }
    };
    let began = Instant::now();
    if o.breakdown_only {
        let doc = breakdown(&o, &began).await?;
        let path = o.out.join("breakdown.md");
        std::fs::write(&path, &doc).map_err(|e| e.to_string())?;
        println!("{doc}");
        eprintln!("[bench] breakdown: {}", path.display());
        return Ok(());
    }
    let load_before = uptime();
    eprintln!("[bench] starting the four targets ({} repeats)", o.repeats);
    let mut targets = Vec::new();
    let build = o
        .gateway_build
        .clone()
        .unwrap_or_else(|| o.root.join("build"));
    for kind in &o.kinds {
        targets.push(Target::start(*kind, &o.root, &build)?);
    }
    let gateway = targets
        .iter()
        .position(|t| t.kind == Kind::Gateway)
        .filter(|_| o.extras);
    // The alarm sample runs on a gateway of its own for the whole run.
    let alarm_target = if o.smoke || gateway.is_none() {
        None
    } else {
        Some(Target::start(Kind::Gateway, &o.root, &build)?)
    };
    let alarm = match &alarm_target {
        Some(t) => Some(AlarmSample::start(t).await?),
        None => None,
    };

    let mut results = Results::default();
    let mut reads = Vec::new();
    for repeat in 0..o.repeats {
        for i in 0..targets.len() {
            let n = targets.len();
            let target = &mut targets[(i + repeat) % n];
            eprintln!(
                "[bench] repeat {} · {} ({:.0} s)",
                repeat + 1,
                target.kind.name(),
                began.elapsed().as_secs_f64()
            );
            let r = match measure::turn(target, sizes, &mut results).await {
                Ok(r) => r,
                Err(e) => {
                    let log = target.log();
                    let tail: Vec<&str> = log.lines().rev().take(30).collect();
                    eprintln!("[bench] {} failed; its log ends:", target.kind.name());
                    for line in tail.iter().rev() {
                        eprintln!("  {line}");
                    }
                    return Err(format!("{}: {e}", target.kind.name()));
                }
            };
            if target.kind == Kind::Gateway {
                reads.push(r);
            }
        }
    }

    if gateway.is_some() {
        eprintln!("[bench] bytes written per event (gateway, eventIds)");
    }
    let checkpoints = if o.smoke {
        vec![10, 100]
    } else {
        vec![10, 1_000, 10_000]
    };
    let growth = match gateway {
        Some(g) => measure::record_growth(&targets[g], &checkpoints).await?,
        None => Vec::new(),
    };
    let alarm = match alarm {
        Some(a) => Some(a.finish().await),
        None => None,
    };
    drop(alarm_target);
    drop(targets);
    let load_after = uptime();

    let mut doc = String::new();
    let _ = writeln!(
        doc,
        "{}\n",
        machine(&o.root, o.repeats, &load_before, &load_after)
    );
    doc.push_str(&results.table(&o.kinds));
    doc.push('\n');
    if gateway.is_some() {
        doc.push_str(&gateway_only(&reads, &growth, alarm, &wasm_figures(&build)));
    }
    if o.core {
        doc.push_str(&core_table(&o.root.join("target/criterion")));
    }
    let main_seconds = began.elapsed().as_secs_f64();
    if o.breakdown {
        if o.cuts_build.join("index.js").is_file() {
            doc.push_str(&breakdown(&o, &began).await?);
        } else {
            eprintln!(
                "[bench] no breakdown: {} has no bench-cuts build (scripts/bench.sh builds it)",
                o.cuts_build.display()
            );
        }
    }
    if o.breakdown {
        let _ = writeln!(
            doc,
            "\nMain suite: {main_seconds:.0} s; breakdown: {:.0} s.",
            began.elapsed().as_secs_f64() - main_seconds
        );
    }
    let _ = writeln!(
        doc,
        "\nWhole run: {:.0} s ({}).",
        began.elapsed().as_secs_f64(),
        if o.smoke { "smoke" } else { "full" }
    );
    let tables = o.out.join("tables.md");
    std::fs::write(&tables, &doc).map_err(|e| e.to_string())?;
    if !o.smoke {
        let png = o.out.join("latency.png");
        match plot::latency(&results, &png, &o.root) {
            Ok(()) => eprintln!("[bench] plot: {}", png.display()),
            Err(e) => eprintln!("[bench] no plot: {e}"),
        }
    }
    println!("{doc}");
    eprintln!("[bench] tables: {}", tables.display());
    Ok(())
}

/// The breakdown: the floor, the shipped gateway and the `bench-cuts` build
/// with each cut, interleaved one operation at a time (in a new random order
/// each round) on a smaller suite.
async fn breakdown(o: &Options, began: &Instant) -> Result<String, String> {
    let sizes = Sizes {
        cold: 30,
        warm: 100,
        pings: 0,
        restart: 0,
        events: 60,
        loop_for: Duration::from_secs(2),
        full: false,
    };
    if !o.cuts_build.join("index.js").is_file() {
        return Err(format!(
            "{} has no bench-cuts build: scripts/bench.sh builds it (scripts/build-worker.sh --out-dir DIR --features bench-cuts)",
            o.cuts_build.display()
        ));
    }
    let load_before = uptime();
    let started = Instant::now();
    let shipped = o
        .gateway_build
        .clone()
        .unwrap_or_else(|| o.root.join("build"));
    let mut kinds = vec![Kind::Floor, Kind::Gateway];
    kinds.extend(Cut::ALL.map(Kind::Cut));
    eprintln!("[bench] breakdown: starting {} targets", kinds.len());
    let mut targets = Vec::new();
    for kind in &kinds {
        let build = if matches!(kind, Kind::Cut(_)) {
            &o.cuts_build
        } else {
            &shipped
        };
        targets.push(Target::start(*kind, &o.root, build)?);
    }
    let mut results = Results::default();
    for repeat in 0..o.breakdown_repeats {
        eprintln!(
            "[bench] breakdown repeat {} ({:.0} s)",
            repeat + 1,
            began.elapsed().as_secs_f64()
        );
        measure::interleaved(&targets, sizes, repeat as u64, &mut results)
            .await
            .map_err(|e| format!("breakdown: {e}"))?;
    }
    drop(targets);
    Ok(format!(
        "\n### Breakdown\n\n{} repeats of {} cold upgrades, {} warm upgrades, {} events to 1 subscriber and {} s of closed loop (in windows of 250 ms) per build, every operation made on each build in turn, in a new random order each round; load average {} before, {} after; {:.0} s.\n\n{}",
        o.breakdown_repeats,
        sizes.cold,
        sizes.warm,
        sizes.events,
        sizes.loop_for.as_secs(),
        load_before,
        uptime(),
        started.elapsed().as_secs_f64(),
        results.breakdown(&kinds, Kind::Cut(Cut::Nothing))
    ))
}

fn gateway_only(
    reads: &[Reads],
    growth: &[measure::RecordPoint],
    alarm: Option<(usize, f64)>,
    wasm: &str,
) -> String {
    let mut out = String::from("| gateway only | value |\n|---|---|\n");
    let (wr, wu, rr, ru) = reads.iter().fold((0, 0, 0, 0), |a, r: &Reads| {
        (
            a.0 + r.warm_reads,
            a.1 + r.warm_upgrades,
            a.2 + r.restart_reads,
            a.3 + r.restart_upgrades,
        )
    });
    let per = |r: usize, u: usize| {
        if u == 0 {
            "— (no upgrades)".to_owned()
        } else {
            #[allow(clippy::cast_precision_loss)]
            let x = r as f64 / u as f64;
            format!("{x:.2} ({r} reads / {u} upgrades)")
        }
    };
    let _ = writeln!(out, "| storage reads per warm upgrade | {} |", per(wr, wu));
    let _ = writeln!(
        out,
        "| storage reads per cold upgrade after a restart | {} |",
        per(rr, ru)
    );
    // The room's own timing of its upgrades (`upgrade_timing`; the
    // runtime's clock moves only across I/O, so whole milliseconds).
    let pooled =
        |pick: &dyn Fn(&Reads) -> Vec<f64>| -> Vec<f64> { reads.iter().flat_map(pick).collect() };
    let dist = |xs: &[f64]| {
        if xs.is_empty() {
            return "—".to_owned();
        }
        format!(
            "{} / {} / {} ms (p50 / p90 / p99 of {})",
            num(stats::percentile(xs, 50.0)),
            num(stats::percentile(xs, 90.0)),
            num(stats::percentile(xs, 99.0)),
            xs.len()
        )
    };
    let warm_total = pooled(&|r| r.warm.iter().map(|t| t.total_ms).collect());
    let restart_total = pooled(&|r| r.restart.iter().map(|t| t.total_ms).collect());
    let restart_storage = pooled(&|r| r.restart.iter().map(|t| t.storage_ms).collect());
    let _ = writeln!(
        out,
        "| the room's handler (`upgrade_timing` `total_ms`), warm upgrade | {} |",
        dist(&warm_total)
    );
    let _ = writeln!(
        out,
        "| the room's handler (`total_ms`), cold upgrade after a restart | {} |",
        dist(&restart_total)
    );
    let _ = writeln!(
        out,
        "| of which its one storage read (`storage_ms`) | {} |",
        dist(&restart_storage)
    );
    for p in growth {
        let _ = writeln!(
            out,
            "| event {} of one job with eventIds: bytes its record write wrote (hot state + the chunk of its id) / events per second (4 producers) up to it | {} B / {} |",
            p.event,
            p.record_bytes.map_or_else(|| "—".to_owned(), |b| b.to_string()),
            num(p.events_per_second)
        );
    }
    if let Some((wakes, seconds)) = alarm {
        let _ = writeln!(
            out,
            "| alarm wakes per hour, idle job, 8 healthy subscribers | {:.0} ({wakes} wakes in {seconds:.0} s, scaled to 3600 s) |",
            wakes as f64 * 3600.0 / seconds
        );
    }
    out.push_str(wasm);
    out
}

/// Raw and gzip size of the release wasm, and its cold compile and
/// instantiate time in Chromium's V8 (`bench/instantiate.mjs`; the engine
/// workerd embeds, a proxy for what a cold isolate pays).
fn wasm_figures(build: &Path) -> String {
    let wasm = build.join("index_bg.wasm");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("instantiate.mjs");
    let raw = std::fs::metadata(&wasm).map(|m| m.len()).unwrap_or(0);
    let gzip = Command::new("sh")
        .arg("-c")
        .arg("gzip -9 -c \"$1\" | wc -c")
        .arg("sh")
        .arg(&wasm)
        .output()
        .ok()
        .and_then(|o| {
            String::from_utf8_lossy(&o.stdout)
                .trim()
                .parse::<u64>()
                .ok()
        })
        .unwrap_or(0);
    let output = Command::new("node")
        .arg(script)
        .arg(&wasm)
        .arg(INSTANTIATE_RUNS.to_string())
        .output();
    let timing = match output {
        Ok(o) if o.status.success() => instantiate_row(&String::from_utf8_lossy(&o.stdout)),
        Ok(o) => {
            let err = String::from_utf8_lossy(&o.stderr);
            let first = err.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
            eprintln!("[bench] wasm instantiation not measured: {first}");
            format!(
                "| release wasm, cold compile / instantiate in Chromium | — (no chromium: scripts/setup.sh --browser installs it; {}) |\n",
                first.chars().take(120).collect::<String>()
            )
        }
        Err(e) => {
            format!("| release wasm, cold compile / instantiate in Chromium | — (node: {e}) |\n")
        }
    };
    format!("| release wasm, raw / gzip -9 | {raw} B / {gzip} B |\n{timing}")
}

/// Compiles and instantiations `bench/instantiate.mjs` makes.
const INSTANTIATE_RUNS: usize = 9;

/// The table rows of `bench/instantiate.mjs`'s JSON line.
fn instantiate_row(line: &str) -> String {
    let Ok(v) = serde_json::from_str::<serde_json::Value>(line.trim()) else {
        return format!(
            "| release wasm, cold compile / instantiate in Chromium | — (unreadable: {}) |\n",
            line.trim()
        );
    };
    let list = |name: &str| -> Vec<f64> {
        v.get(name)
            .and_then(serde_json::Value::as_array)
            .map(|a| a.iter().filter_map(serde_json::Value::as_f64).collect())
            .unwrap_or_default()
    };
    let cell = |xs: &[f64]| {
        let (med, min, max) = stats::spread(xs);
        format!("{} ms ({}..{})", num(med), num(min), num(max))
    };
    let browser = v
        .get("browser")
        .and_then(serde_json::Value::as_str)
        .unwrap_or("Chromium");
    let compile = list("compile");
    let instantiate = list("instantiate");
    format!(
        "| release wasm, cold `WebAssembly.compile` in {browser} (median of {n}, min..max) | {} |\n| release wasm, `WebAssembly.instantiate` of the compiled module, stub imports (median of {n}, min..max) | {} |\n",
        cell(&compile),
        cell(&instantiate),
        n = compile.len()
    )
}

/// The core's criterion benchmarks (`gateway/core/benches/core.rs`, run by
/// `scripts/bench.sh`): `(group, id, label)`; the first of a group is its
/// ratios' base.
const CORE_BENCHES: [(&str, &str, &str); 10] = [
    (
        "fanout_one_progress_event",
        "1",
        "one progress event, fan-out to 1 socket (parse, validate, persist record, encode, 1 send)",
    ),
    ("fanout_one_progress_event", "8", "… to 8 sockets"),
    ("fanout_one_progress_event", "32", "… to 32 sockets"),
    (
        "parse_client_frame",
        "ping",
        "parse `{ \"type\": \"ping\" }` (a ping that reaches the room)",
    ),
    (
        "parse_client_frame",
        "cancel",
        "parse `{\"type\":\"cancel\"}`",
    ),
    (
        "parse_client_frame",
        "unknown_type",
        "parse an unknown type (answered with `error`)",
    ),
    (
        "parse_client_frame",
        "invalid_json",
        "parse invalid JSON (closed 1002)",
    ),
    ("parse_client_frame", "60_KiB", "parse a 60 KiB frame"),
    (
        "upgrade",
        "fresh",
        "warm upgrade, fresh (token hash, supersede check, accept, snapshot)",
    ),
    ("upgrade", "resume", "warm upgrade, resume with `lastSeq`"),
];

/// The criterion medians as a Markdown table.
fn core_table(dir: &Path) -> String {
    let median = |group: &str, id: &str| -> Option<f64> {
        let path = dir.join(group).join(id).join("new/estimates.json");
        let v: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(path).ok()?).ok()?;
        v["median"]["point_estimate"].as_f64()
    };
    let mut out = String::from(
        "\n### The core (criterion, native release build, `--warm-up-time 1 --measurement-time 3`)\n\n| benchmark | median | ratio |\n|---|---|---|\n",
    );
    let mut base = None;
    let mut group_of_base = "";
    for (group, id, label) in CORE_BENCHES {
        let m = median(group, id);
        if group != group_of_base {
            group_of_base = group;
            base = m;
        }
        let cell = m.map_or_else(|| "—".to_owned(), |ns| format!("{} µs", num(ns / 1000.0)));
        let r = match (m, base) {
            (Some(m), Some(b)) if b > 0.0 => format!("{:.2}", m / b),
            _ => "—".to_owned(),
        };
        let _ = writeln!(out, "| {label} | {cell} | {r} |");
    }
    out
}

/// `p` made absolute against the working directory.
fn absolute(p: PathBuf) -> PathBuf {
    std::path::absolute(&p).unwrap_or(p)
}

fn uptime() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

fn machine(root: &Path, repeats: usize, before: &str, after: &str) -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_owned())
        })
        .unwrap_or_default();
    let cores = std::thread::available_parallelism().map_or(0, usize::from);
    let version = |package: &str| {
        std::fs::read_to_string(root.join("node_modules").join(package).join("package.json"))
            .ok()
            .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
            .and_then(|v| v.get("version").and_then(|v| v.as_str()).map(str::to_owned))
            .unwrap_or_default()
    };
    format!(
        "Machine: {cpu}, {cores} cores; wrangler {}, workerd {}; {repeats} interleaved repeats; load average (1/5/15 min) {before} before, {after} after.",
        version("wrangler"),
        version("workerd")
    )
}
