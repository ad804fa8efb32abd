//! The `Gateway` fixture: the release Worker built once per test binary and
//! served by one `wrangler dev --local` (gateway-testkit) on a free loopback
//! port with its own persistence directory, stoppable and restartable on the
//! same directory.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

pub use gateway_testkit::redact;
use gateway_testkit::{Options, Wrangler};

/// How long wrangler may take to answer `GET /healthz` after it is started.
const START_TIMEOUT: Duration = Duration::from_secs(90);
/// What the wasm build depends on, relative to the repository root.
const BUILD_INPUTS: [&str; 6] = [
    "gateway/worker",
    "gateway/core",
    "Cargo.toml",
    "Cargo.lock",
    "scripts/build-worker.sh",
    "package-lock.json",
];

/// The repository root (two levels above this crate).
#[must_use]
pub fn repo_root() -> PathBuf {
    let here = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    here.canonicalize().unwrap_or(here)
}

/// Builds the Worker with `scripts/build-worker.sh`, once per test binary,
/// unless `build/index_bg.wasm` is newer than every input of the build.
/// `E2E_SKIP_BUILD=1` uses an existing `build/` as it is (it must exist).
///
/// # Panics
/// When the build fails, with its output.
pub fn ensure_built() {
    static BUILD: OnceLock<Result<(), String>> = OnceLock::new();
    let outcome = BUILD.get_or_init(|| {
        let root = repo_root();
        let entry = root.join("build/index.js");
        if std::env::var_os("E2E_SKIP_BUILD").is_some_and(|v| v != "0") {
            return if entry.exists() {
                Ok(())
            } else {
                Err(format!(
                    "E2E_SKIP_BUILD is set but {} does not exist",
                    entry.display()
                ))
            };
        }
        if build_is_fresh(&root) {
            eprintln!("[e2e] build/ is newer than its sources; not rebuilding");
            return Ok(());
        }
        let started = Instant::now();
        let output = Command::new(root.join("scripts/build-worker.sh"))
            .current_dir(&root)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("cannot run scripts/build-worker.sh: {e}"))?;
        if output.status.success() {
            eprintln!(
                "[e2e] worker built in {:.1} s",
                started.elapsed().as_secs_f64()
            );
            Ok(())
        } else {
            Err(format!(
                "scripts/build-worker.sh failed ({}):\n{}\n{}",
                output.status,
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            ))
        }
    });
    if let Err(e) = outcome {
        panic!("{e}");
    }
}

fn build_is_fresh(root: &Path) -> bool {
    let modified = |p: &Path| fs::metadata(p).and_then(|m| m.modified()).ok();
    let (Some(built), Some(_)) = (
        modified(&root.join("build/index_bg.wasm")),
        modified(&root.join("build/index.js")),
    ) else {
        return false;
    };
    let mut stack: Vec<PathBuf> = BUILD_INPUTS.iter().map(|p| root.join(p)).collect();
    while let Some(path) = stack.pop() {
        if path
            .file_name()
            .is_some_and(|n| n == "target" || n == "build")
        {
            continue;
        }
        if modified(&path).is_some_and(|m| m > built) {
            return false;
        }
        if let Ok(entries) = fs::read_dir(&path) {
            stack.extend(entries.flatten().map(|e| e.path()));
        }
    }
    true
}

/// One running (or stopped) local gateway.
#[derive(Debug)]
pub struct Gateway {
    /// Declared before `_dir`: stopped before its directory is removed.
    wrangler: Wrangler,
    /// Config, logs and `state/`; removed when the gateway is dropped.
    _dir: tempfile::TempDir,
    secret: String,
}

impl Gateway {
    /// Builds the Worker (once per binary) and starts a gateway on a free
    /// port with a fresh persistence directory.
    ///
    /// # Panics
    /// When the build fails or the gateway does not become healthy in time
    /// (wrangler's log is part of the message).
    #[must_use]
    pub fn start() -> Self {
        Self::start_with_vars(&[])
    }

    /// The gateway of this test binary, started on first use and shared by
    /// its tests (each uses its own jobs). It is never dropped: the watchdog
    /// kills its process group when the test binary exits.
    pub fn shared() -> &'static Self {
        static SHARED: OnceLock<Gateway> = OnceLock::new();
        SHARED.get_or_init(|| Self::start_static(&[]))
    }

    /// Starts a gateway meant to live in a `static` (never dropped): like
    /// [`Gateway::start_with_vars`], but the watchdog also removes its
    /// directory when the test binary exits.
    ///
    /// # Panics
    /// As [`Gateway::start`].
    #[must_use]
    pub fn start_static(vars: &[(&str, &str)]) -> Self {
        Self::launch(vars, true, b"HTTP/1.1 200")
    }

    /// Like [`Gateway::start`], with extra or overridden Worker vars.
    ///
    /// # Panics
    /// As [`Gateway::start`].
    #[must_use]
    pub fn start_with_vars(vars: &[(&str, &str)]) -> Self {
        Self::launch(vars, false, b"HTTP/1.1 200")
    }

    /// Starts a gateway whose vars are invalid: it is up once `GET /healthz`
    /// answers `500` (every request is refused as `misconfigured`).
    ///
    /// # Panics
    /// As [`Gateway::start`], if `/healthz` does not answer 500 in time.
    #[must_use]
    pub fn start_misconfigured(vars: &[(&str, &str)]) -> Self {
        Self::launch(vars, false, b"HTTP/1.1 500")
    }

    fn launch(vars: &[(&str, &str)], shared: bool, ready: &'static [u8]) -> Self {
        ensure_built();
        let root = repo_root();
        let dir = tempfile::Builder::new()
            .prefix("gateway-e2e-")
            .tempdir()
            .unwrap_or_else(|e| panic!("cannot create a temp dir: {e}"));
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let secret = format!("e2e-producer-secret-{}-{nanos}", std::process::id());
        let main = root.join("build/index.js");
        let config = gateway_testkit::gateway_config(&root, dir.path(), &main, vars, &secret)
            .unwrap_or_else(|e| panic!("{e}"));
        let wrangler = Wrangler::start(Options {
            root,
            dir: dir.path().to_owned(),
            config,
            state: dir.path().join("state"),
            ready,
            start_timeout: START_TIMEOUT,
            remove_on_exit: shared,
        })
        .unwrap_or_else(|e| panic!("gateway: {e}"));
        Self {
            wrangler,
            _dir: dir,
            secret,
        }
    }

    /// `http://127.0.0.1:PORT`
    #[must_use]
    pub fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.wrangler.port())
    }

    /// `ws://127.0.0.1:PORT`
    #[must_use]
    pub fn ws_base(&self) -> String {
        format!("ws://127.0.0.1:{}", self.wrangler.port())
    }

    /// The producer secret this gateway was started with.
    #[must_use]
    pub fn producer_secret(&self) -> &str {
        &self.secret
    }

    /// A client for this gateway's HTTP and WebSocket routes.
    #[must_use]
    pub fn api(&self) -> crate::Api {
        crate::Api::new(self.base_url(), self.ws_base(), self.secret.clone())
    }

    /// Everything wrangler and workerd printed since the last start, unmasked:
    /// for tests that check what the Worker itself logs (never print it).
    #[must_use]
    pub fn raw_log(&self) -> String {
        self.wrangler.raw_log()
    }

    /// Everything wrangler and workerd printed since the last start, with
    /// tokens and credentials masked ([`redact`]).
    #[must_use]
    pub fn log(&self) -> String {
        self.wrangler.log()
    }

    /// Stops wrangler and workerd (the whole process group), waiting until
    /// every process of the group is gone. Storage stays on disk.
    pub fn stop(&mut self) {
        self.wrangler.stop();
    }

    /// Kills wrangler and workerd at once with SIGKILL (a crash: nothing gets
    /// to flush or close sockets), waiting until the group is gone.
    pub fn crash(&mut self) {
        self.wrangler.crash();
    }

    /// Stops the gateway (if running) and starts it again on the same port
    /// and the same persistence directory (a redeploy, or after [`Gateway::crash`]).
    ///
    /// # Panics
    /// When it does not become healthy again.
    pub fn restart(&mut self) {
        self.wrangler
            .restart()
            .unwrap_or_else(|e| panic!("gateway restart: {e}"));
    }

    /// Stops the gateway and starts it again on the same port and storage
    /// with these vars instead of the ones it was started with (a redeploy
    /// with a new configuration, e.g. a key rotation).
    ///
    /// # Panics
    /// When the configuration cannot be written or the gateway does not
    /// become healthy again.
    pub fn restart_with_vars(&mut self, vars: &[(&str, &str)]) {
        self.stop();
        let root = repo_root();
        let main = root.join("build/index.js");
        gateway_testkit::gateway_config(&root, self._dir.path(), &main, vars, &self.secret)
            .unwrap_or_else(|e| panic!("{e}"));
        self.restart();
    }

    /// Whether the gateway's processes are running.
    #[must_use]
    pub fn is_running(&self) -> bool {
        self.wrangler.is_running()
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        if std::thread::panicking() && self.wrangler.is_running() {
            let log = self.wrangler.log();
            let tail: Vec<&str> = log.lines().rev().take(60).collect();
            eprintln!("[e2e] wrangler log (last 60 lines):");
            for line in tail.iter().rev() {
                eprintln!("  {line}");
            }
        }
    }
}
