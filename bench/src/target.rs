//! The systems under test: the gateway's release build and the JavaScript
//! baselines of `bench/baselines/`, each served by its own `wrangler dev
//! --local` (the same workerd; gateway-testkit, as the e2e suite) on a free
//! loopback port with its own persistence directory, and restartable on it.

use std::path::{Path, PathBuf};
use std::time::Duration;

use gateway_testkit::{Options, Wrangler};

/// How long wrangler may take to answer `GET /healthz`.
const START_TIMEOUT: Duration = Duration::from_secs(120);

/// What runs behind a port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    /// (a) the progress gateway (release wasm).
    Gateway,
    /// (b) bare JS Durable Object, hibernation API, no auth, no storage.
    Floor,
    /// (c) the floor plus one awaited `storage.put` per event.
    FloorWrite,
    /// (d) the seed's `ProgressWebSocketDO` design in JS.
    Seed,
    /// The gateway built with the benchmark-only feature `bench-cuts`, one
    /// piece left out (the breakdown; never the shipped build).
    Cut(Cut),
}

/// What a `bench-cuts` build of the gateway leaves out (its var `BENCH_CUTS`,
/// `gateway/worker/src/bench_cuts.rs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Cut {
    /// Nothing: the same code as shipped, plus the cut checks.
    Nothing,
    /// Every log line.
    Log,
    /// Every alarm write.
    Alarm,
    /// The room's storage writes (the record, the delivered mark).
    Write,
    /// All three.
    All,
}

impl Cut {
    /// The breakdown's builds, in table order.
    pub const ALL: [Self; 5] = [
        Self::Nothing,
        Self::Log,
        Self::Alarm,
        Self::Write,
        Self::All,
    ];

    /// The value of `BENCH_CUTS`.
    #[must_use]
    pub fn var(self) -> &'static str {
        match self {
            Self::Nothing => "",
            Self::Log => "log",
            Self::Alarm => "alarm",
            Self::Write => "write",
            Self::All => "log,alarm,write",
        }
    }
}

impl Kind {
    /// All four, in the order the tables show them.
    pub const ALL: [Self; 4] = [Self::Gateway, Self::Floor, Self::FloorWrite, Self::Seed];

    /// Name on the command line.
    #[must_use]
    pub fn id(self) -> &'static str {
        match self {
            Self::Gateway => "gateway",
            Self::Floor => "floor",
            Self::FloorWrite => "floor-write",
            Self::Seed => "seed",
            Self::Cut(_) => "cut",
        }
    }

    /// Short name used in tables and files.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::Gateway => "gateway",
            Self::Floor => "floor",
            Self::FloorWrite => "floor+write",
            Self::Seed => "seed (JS)",
            Self::Cut(Cut::Nothing) => "gateway, bench-cuts build, nothing left out",
            Self::Cut(Cut::Log) => "… without log lines",
            Self::Cut(Cut::Alarm) => "… without alarm writes",
            Self::Cut(Cut::Write) => "… without storage writes (record, delivered mark)",
            Self::Cut(Cut::All) => "… without all three",
        }
    }

    /// Whether several sockets may watch one job (the seed keeps one).
    #[must_use]
    pub fn fans_out(self) -> bool {
        self != Self::Seed
    }

    fn config(self, root: &Path) -> Option<PathBuf> {
        let base = root.join("bench/baselines");
        match self {
            Self::Gateway | Self::Cut(_) => None,
            Self::Floor => Some(base.join("floor.toml")),
            Self::FloorWrite => Some(base.join("floor-write.toml")),
            Self::Seed => Some(base.join("seed.toml")),
        }
    }
}

/// One running (or stopped) target.
#[derive(Debug)]
pub struct Target {
    /// What it is.
    pub kind: Kind,
    /// Declared before `dir`: stopped before its directory is removed.
    wrangler: Wrangler,
    dir: tempfile::TempDir,
    secret: String,
}

impl Target {
    /// Starts `kind` (the gateway from `build`, its `index.js`; a cut with
    /// its `BENCH_CUTS`) and waits until it is healthy.
    ///
    /// # Errors
    /// When wrangler cannot start or does not become healthy (its log,
    /// redacted, is part of the message).
    pub fn start(kind: Kind, root: &Path, build: &Path) -> Result<Self, String> {
        let dir = tempfile::Builder::new()
            .prefix("gateway-bench-")
            .tempdir()
            .map_err(|e| format!("temp dir: {e}"))?;
        let secret = format!("bench-producer-secret-{}", std::process::id());
        let config = match kind.config(root) {
            Some(config) => config,
            None => {
                let vars = match kind {
                    Kind::Cut(cut) => vec![("BENCH_CUTS", cut.var())],
                    _ => Vec::new(),
                };
                gateway_testkit::gateway_config(
                    root,
                    dir.path(),
                    &build.join("index.js"),
                    &vars,
                    &secret,
                )?
            }
        };
        let wrangler = Wrangler::start(Options {
            root: root.to_owned(),
            dir: dir.path().to_owned(),
            config,
            state: dir.path().join("state"),
            ready: b"HTTP/1.1 200",
            start_timeout: START_TIMEOUT,
            remove_on_exit: false,
        })
        .map_err(|e| format!("{}: {e}", kind.name()))?;
        Ok(Self {
            kind,
            wrangler,
            dir,
            secret,
        })
    }

    /// `127.0.0.1:PORT`
    #[must_use]
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.wrangler.port())
    }

    /// The producer secret (the baselines ignore it).
    #[must_use]
    pub fn secret(&self) -> &str {
        &self.secret
    }

    /// Where workerd keeps this target's Durable Object storage.
    #[must_use]
    pub fn state_dir(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    /// Everything wrangler and workerd printed since the last start, with
    /// tokens and credentials masked.
    #[must_use]
    pub fn log(&self) -> String {
        self.wrangler.log()
    }

    /// Stops and starts again on the same port and storage.
    ///
    /// # Errors
    /// When it does not become healthy again.
    pub fn restart(&mut self) -> Result<(), String> {
        self.wrangler
            .restart()
            .map_err(|e| format!("{}: {e}", self.kind.name()))
    }
}
