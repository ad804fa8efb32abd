//! The `Gateway` fixture: one `wrangler dev --local` (and its workerd) on a
//! free loopback port with its own persistence directory, stoppable and
//! restartable on the same directory.

use std::fs::{self, File};
use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;

/// How long wrangler may take to answer `GET /healthz` after it is started.
const START_TIMEOUT: Duration = Duration::from_secs(90);
/// How long the process group gets to exit after SIGTERM before SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(5);

/// Runs the command given as arguments in the background and waits on its
/// own stdin, a pipe whose other end only the test process holds. When that
/// end closes (the fixture stops it, or the test process died in any way),
/// the whole process group (this shell, wrangler and its workerd) is killed;
/// a shared gateway's directory (`E2E_REMOVE_ON_EXIT`) is removed as well.
const WATCHDOG: &str = r#"
"$@" </dev/null &
read -r _ || true
trap '' TERM
kill -TERM 0 2>/dev/null
sleep 5
if [ -n "${E2E_REMOVE_ON_EXIT:-}" ]; then rm -rf -- "$E2E_REMOVE_ON_EXIT"; fi
kill -KILL 0 2>/dev/null
"#;

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
    root: PathBuf,
    dir: tempfile::TempDir,
    port: u16,
    secret: String,
    starts: u32,
    /// Shared gateways are never dropped: the watchdog removes their dir.
    shared: bool,
    /// The status line `GET /healthz` must answer with once it is up.
    ready: &'static [u8],
    running: Option<Running>,
}

#[derive(Debug)]
struct Running {
    child: Child,
    /// The watchdog's stdin; dropping it tells the watchdog to kill the group.
    lifeline: Option<ChildStdin>,
    group: Pid,
    log: PathBuf,
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
        Self::launch(vars, true)
    }

    /// Like [`Gateway::start`], with extra or overridden Worker vars.
    ///
    /// # Panics
    /// As [`Gateway::start`].
    #[must_use]
    pub fn start_with_vars(vars: &[(&str, &str)]) -> Self {
        Self::launch(vars, false)
    }

    /// Starts a gateway whose vars are invalid: it is up once `GET /healthz`
    /// answers `500` (every request is refused as `misconfigured`).
    ///
    /// # Panics
    /// As [`Gateway::start`], if `/healthz` does not answer 500 in time.
    #[must_use]
    pub fn start_misconfigured(vars: &[(&str, &str)]) -> Self {
        Self::launch_expecting(vars, false, b"HTTP/1.1 500")
    }

    fn launch(vars: &[(&str, &str)], shared: bool) -> Self {
        Self::launch_expecting(vars, shared, b"HTTP/1.1 200")
    }

    fn launch_expecting(vars: &[(&str, &str)], shared: bool, ready: &'static [u8]) -> Self {
        ensure_built();
        let dir = tempfile::Builder::new()
            .prefix("gateway-e2e-")
            .tempdir()
            .unwrap_or_else(|e| panic!("cannot create a temp dir: {e}"));
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let secret = format!("e2e-producer-secret-{}-{nanos}", std::process::id());
        let mut gateway = Self {
            root: repo_root(),
            dir,
            port: free_port(),
            secret,
            starts: 0,
            shared,
            ready,
            running: None,
        };
        gateway.write_config(vars);
        gateway.spawn();
        gateway
    }

    /// `http://127.0.0.1:PORT`
    #[must_use]
    pub fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// `ws://127.0.0.1:PORT`
    #[must_use]
    pub fn ws_base(&self) -> String {
        format!("ws://127.0.0.1:{}", self.port)
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
        self.running
            .as_ref()
            .map(|r| fs::read_to_string(&r.log).unwrap_or_default())
            .unwrap_or_default()
    }

    /// Everything wrangler and workerd printed since the last start, with
    /// tokens and credentials masked ([`redact`]).
    #[must_use]
    pub fn log(&self) -> String {
        self.running
            .as_ref()
            .map(|r| redact(&fs::read_to_string(&r.log).unwrap_or_default()))
            .unwrap_or_default()
    }

    /// Stops wrangler and workerd (the whole process group), waiting until
    /// every process of the group is gone. Storage stays on disk.
    pub fn stop(&mut self) {
        self.stop_with(Signal::SIGTERM);
    }

    /// Kills wrangler and workerd at once with SIGKILL (a crash: nothing gets
    /// to flush or close sockets), waiting until the group is gone.
    pub fn crash(&mut self) {
        self.stop_with(Signal::SIGKILL);
    }

    fn stop_with(&mut self, signal: Signal) {
        let Some(mut running) = self.running.take() else {
            return;
        };
        drop(running.lifeline.take());
        let _ = killpg(running.group, signal);
        let deadline = Instant::now() + STOP_GRACE;
        let mut killed = false;
        loop {
            let _ = running.child.try_wait();
            if killpg(running.group, None).is_err() {
                break;
            }
            if Instant::now() > deadline {
                if killed {
                    // The group still exists after SIGKILL: give up waiting.
                    break;
                }
                let _ = killpg(running.group, Signal::SIGKILL);
                killed = true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = running.child.wait();
    }

    /// Stops the gateway (if running) and starts it again on the same port
    /// and the same persistence directory (a redeploy, or after [`Gateway::crash`]).
    ///
    /// # Panics
    /// When it does not become healthy again.
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }

    /// Whether the gateway's processes are running.
    #[must_use]
    pub fn is_running(&self) -> bool {
        self.running.is_some()
    }

    fn write_config(&self, vars: &[(&str, &str)]) {
        let source = self.root.join("wrangler.toml");
        let text = fs::read_to_string(&source)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", source.display()));
        let mut config: toml::Table = toml::from_str(&text)
            .unwrap_or_else(|e| panic!("{} is not TOML: {e}", source.display()));
        // The fixture builds once itself; wrangler must not rebuild or watch.
        config.remove("build");
        let main = config
            .get("main")
            .and_then(toml::Value::as_str)
            .unwrap_or("build/index.js")
            .to_owned();
        config.insert(
            "main".into(),
            toml::Value::String(self.root.join(main).display().to_string()),
        );
        if !vars.is_empty() {
            let table = config
                .entry("vars")
                .or_insert_with(|| toml::Value::Table(toml::Table::new()));
            if let Some(table) = table.as_table_mut() {
                for (name, value) in vars {
                    table.insert((*name).to_owned(), toml::Value::String((*value).to_owned()));
                }
            }
        }
        let rendered = toml::to_string(&config).unwrap_or_else(|e| panic!("{e}"));
        fs::write(self.dir.path().join("wrangler.toml"), rendered)
            .unwrap_or_else(|e| panic!("cannot write the test config: {e}"));
        // wrangler reads secrets for `dev` from .dev.vars beside the config.
        fs::write(
            self.dir.path().join(".dev.vars"),
            format!("PRODUCER_SECRET={}\n", self.secret),
        )
        .unwrap_or_else(|e| panic!("cannot write .dev.vars: {e}"));
        fs::create_dir_all(self.dir.path().join("state"))
            .unwrap_or_else(|e| panic!("cannot create the persistence dir: {e}"));
    }

    fn spawn(&mut self) {
        self.starts += 1;
        let dir = self.dir.path();
        let log = dir.join(format!("wrangler-{}.log", self.starts));
        let out = File::create(&log).unwrap_or_else(|e| panic!("cannot create the log: {e}"));
        let err = out.try_clone().unwrap_or_else(|e| panic!("{e}"));
        let wrangler = self.root.join("node_modules/.bin/wrangler");
        assert!(
            wrangler.exists(),
            "{} missing: run scripts/setup.sh first",
            wrangler.display()
        );
        let mut command = Command::new("sh");
        if self.shared {
            command.env("E2E_REMOVE_ON_EXIT", dir);
        }
        let mut child = command
            .arg("-c")
            .arg(WATCHDOG)
            .arg("e2e-wrangler")
            .arg(&wrangler)
            .arg("dev")
            .arg("--local")
            .args(["--config", "wrangler.toml"])
            .args(["--ip", "127.0.0.1"])
            .args(["--port", &self.port.to_string()])
            .args(["--inspector-port", &free_port().to_string()])
            .arg("--persist-to")
            .arg(dir.join("state"))
            .args(["--show-interactive-dev-session", "false"])
            .current_dir(dir)
            .env("WRANGLER_SEND_METRICS", "false")
            // No banner, so no update check against the npm registry either.
            .env("WRANGLER_HIDE_BANNER", "true")
            .env("CLOUDFLARE_CF_FETCH_ENABLED", "false")
            .env("WRANGLER_LOG_PATH", dir.join("wrangler-debug-logs"))
            .env("NO_COLOR", "1")
            .stdin(Stdio::piped())
            .stdout(out)
            .stderr(err)
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start wrangler: {e}"));
        let lifeline = child.stdin.take();
        let group = Pid::from_raw(i32::try_from(child.id()).unwrap_or(i32::MAX));
        self.running = Some(Running {
            child,
            lifeline,
            group,
            log,
        });
        self.wait_healthy();
    }

    fn wait_healthy(&mut self) {
        let started = Instant::now();
        loop {
            if healthz(self.port, self.ready) {
                eprintln!(
                    "[e2e] gateway on port {} healthy after {:.1} s (start #{})",
                    self.port,
                    started.elapsed().as_secs_f64(),
                    self.starts
                );
                return;
            }
            let exited = self
                .running
                .as_mut()
                .and_then(|r| r.child.try_wait().ok().flatten());
            if exited.is_some() || started.elapsed() > START_TIMEOUT {
                let log = self.log();
                self.stop();
                panic!(
                    "gateway did not answer GET /healthz within {START_TIMEOUT:?} (exit: {exited:?}); wrangler log:\n{log}"
                );
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        if std::thread::panicking() {
            if let Some(running) = &self.running {
                let log = redact(&fs::read_to_string(&running.log).unwrap_or_default());
                let tail: Vec<&str> = log.lines().rev().take(60).collect();
                eprintln!("[e2e] wrangler log (last 60 lines):");
                for line in tail.iter().rev() {
                    eprintln!("  {line}");
                }
            }
        }
        self.stop();
    }
}

/// wrangler's log with every `token=` value and `Bearer` credential masked:
/// its request lines hold upgrade URLs, and a test must never print a token.
#[must_use]
pub fn redact(log: &str) -> String {
    let mut out = log.to_owned();
    for marker in ["token=", "Bearer ", "bearer "] {
        let mut text = String::with_capacity(out.len());
        let mut rest = out.as_str();
        while let Some(i) = rest.find(marker) {
            let (head, tail) = rest.split_at(i + marker.len());
            text.push_str(head);
            text.push_str("<redacted>");
            let end = tail
                .find(|c: char| c == '&' || c == '"' || c.is_whitespace())
                .unwrap_or(tail.len());
            rest = &tail[end..];
        }
        text.push_str(rest);
        out = text;
    }
    out
}

fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("no free port: {e}"))
}

fn healthz(port: u16, ready: &[u8]) -> bool {
    let Ok(mut stream) = TcpStream::connect((Ipv4Addr::LOCALHOST, port)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let request = "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
    if stream.write_all(request.as_bytes()).is_err() {
        return false;
    }
    let mut head = [0_u8; 12];
    stream.read_exact(&mut head).is_ok() && head.starts_with(ready)
}

#[cfg(test)]
mod tests {
    #[test]
    fn redact_masks_query_tokens_and_bearer_credentials() {
        let line = r#"GET /ws/progress?jobId=j&token=abc-123&lastSeq=2 101 "Bearer s3cret""#;
        let out = super::redact(line);
        assert!(!out.contains("abc-123") && !out.contains("s3cret"), "{out}");
        assert!(out.contains("jobId=j&token=<redacted>&lastSeq=2"), "{out}");
    }
}
