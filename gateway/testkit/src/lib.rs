//! Test support shared by the end-to-end suite (`gateway/e2e`) and the
//! benchmark (`bench/`): one `wrangler dev --local` (and its workerd) on a
//! free loopback port with its own persistence directory, stoppable,
//! crashable and restartable on the same directory, never outliving the
//! process that started it; the gateway's `wrangler.toml` rewritten for such
//! a run; and [`redact`], so that no test prints a token from its log.

use std::fs::{self, File};
use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;

/// How long the process group gets to exit after SIGTERM before SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(5);

/// Runs the command given as arguments in the background and waits on its
/// own stdin, a pipe whose other end only the starting process holds. When
/// that end closes (the owner stops it, or the owner died in any way), the
/// whole process group (this shell, wrangler and its workerd) is killed, and
/// a directory named in `WRANGLER_REMOVE_ON_EXIT` is removed.
const WATCHDOG: &str = r#"
"$@" </dev/null &
read -r _ || true
trap '' TERM
kill -TERM 0 2>/dev/null
sleep 5
if [ -n "${WRANGLER_REMOVE_ON_EXIT:-}" ]; then rm -rf -- "$WRANGLER_REMOVE_ON_EXIT"; fi
kill -KILL 0 2>/dev/null
"#;

/// How to run one local Worker.
#[derive(Debug, Clone)]
pub struct Options {
    /// The repository root (where `node_modules/.bin/wrangler` is).
    pub root: PathBuf,
    /// Working directory: logs go here, wrangler runs here.
    pub dir: PathBuf,
    /// The `wrangler.toml` to serve.
    pub config: PathBuf,
    /// Durable Object storage (`--persist-to`).
    pub state: PathBuf,
    /// The start of the status line `GET /healthz` answers once it is up,
    /// e.g. `HTTP/1.1 200`.
    pub ready: &'static [u8],
    /// How long a start may take.
    pub start_timeout: Duration,
    /// Remove `dir` when the owner exits (for a run that is never dropped).
    pub remove_on_exit: bool,
}

/// One running (or stopped) local Worker.
#[derive(Debug)]
pub struct Wrangler {
    options: Options,
    port: u16,
    starts: u32,
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

impl Wrangler {
    /// Starts wrangler on a free port and waits until `GET /healthz` answers
    /// `options.ready`.
    ///
    /// # Errors
    /// When wrangler is missing, cannot start, or is not up in time (the
    /// message holds its log, redacted).
    pub fn start(options: Options) -> Result<Self, String> {
        fs::create_dir_all(&options.state)
            .map_err(|e| format!("cannot create {}: {e}", options.state.display()))?;
        let mut wrangler = Self {
            options,
            port: free_port()?,
            starts: 0,
            running: None,
        };
        wrangler.spawn()?;
        Ok(wrangler)
    }

    /// The loopback port it serves on (the same across restarts).
    #[must_use]
    pub fn port(&self) -> u16 {
        self.port
    }

    /// How many times it was started.
    #[must_use]
    pub fn starts(&self) -> u32 {
        self.starts
    }

    /// Whether its processes are running.
    #[must_use]
    pub fn is_running(&self) -> bool {
        self.running.is_some()
    }

    /// Everything wrangler and workerd printed since the last start,
    /// unmasked: only for checks of what the Worker itself logs (never print
    /// it).
    #[must_use]
    pub fn raw_log(&self) -> String {
        self.running
            .as_ref()
            .map(|r| fs::read_to_string(&r.log).unwrap_or_default())
            .unwrap_or_default()
    }

    /// The log since the last start with tokens and credentials masked.
    #[must_use]
    pub fn log(&self) -> String {
        redact(&self.raw_log())
    }

    /// Stops wrangler and workerd (the whole process group), waiting until
    /// every process of the group is gone. Storage stays on disk.
    pub fn stop(&mut self) {
        self.stop_with(Signal::SIGTERM);
    }

    /// Kills the group at once with SIGKILL (a crash: nothing gets to flush
    /// or close sockets), waiting until it is gone.
    pub fn crash(&mut self) {
        self.stop_with(Signal::SIGKILL);
    }

    /// Stops (if running) and starts again on the same port and storage.
    ///
    /// # Errors
    /// As [`Wrangler::start`].
    pub fn restart(&mut self) -> Result<(), String> {
        self.stop();
        self.spawn()
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

    fn spawn(&mut self) -> Result<(), String> {
        self.starts += 1;
        let o = &self.options;
        let log = o.dir.join(format!("wrangler-{}.log", self.starts));
        let out = File::create(&log).map_err(|e| format!("cannot create the log: {e}"))?;
        let err = out.try_clone().map_err(|e| e.to_string())?;
        let wrangler = o.root.join("node_modules/.bin/wrangler");
        if !wrangler.exists() {
            return Err(format!(
                "{} missing: run scripts/setup.sh first",
                wrangler.display()
            ));
        }
        let mut command = Command::new("sh");
        if o.remove_on_exit {
            command.env("WRANGLER_REMOVE_ON_EXIT", &o.dir);
        }
        let mut child = command
            .arg("-c")
            .arg(WATCHDOG)
            .arg("local-wrangler")
            .arg(&wrangler)
            .args(["dev", "--local", "--ip", "127.0.0.1"])
            .arg("--config")
            .arg(&o.config)
            .args(["--port", &self.port.to_string()])
            .args(["--inspector-port", &free_port()?.to_string()])
            .arg("--persist-to")
            .arg(&o.state)
            .args(["--show-interactive-dev-session", "false"])
            .current_dir(&o.dir)
            .env("WRANGLER_SEND_METRICS", "false")
            // No banner, so no update check against the npm registry either.
            .env("WRANGLER_HIDE_BANNER", "true")
            .env("CLOUDFLARE_CF_FETCH_ENABLED", "false")
            .env("WRANGLER_LOG_PATH", o.dir.join("wrangler-debug-logs"))
            .env("NO_COLOR", "1")
            .stdin(Stdio::piped())
            .stdout(out)
            .stderr(err)
            .process_group(0)
            .spawn()
            .map_err(|e| format!("cannot start wrangler: {e}"))?;
        let lifeline = child.stdin.take();
        let group = Pid::from_raw(i32::try_from(child.id()).unwrap_or(i32::MAX));
        self.running = Some(Running {
            child,
            lifeline,
            group,
            log,
        });
        self.wait_healthy()
    }

    fn wait_healthy(&mut self) -> Result<(), String> {
        let started = Instant::now();
        loop {
            if healthz(self.port, self.options.ready) {
                eprintln!(
                    "[wrangler] port {} healthy after {:.1} s (start #{})",
                    self.port,
                    started.elapsed().as_secs_f64(),
                    self.starts
                );
                return Ok(());
            }
            let exited = self
                .running
                .as_mut()
                .and_then(|r| r.child.try_wait().ok().flatten());
            if exited.is_some() || started.elapsed() > self.options.start_timeout {
                let log = self.log();
                self.stop();
                return Err(format!(
                    "wrangler did not answer GET /healthz within {:?} (exit: {exited:?}); its log:\n{log}",
                    self.options.start_timeout
                ));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Wrangler {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Writes into `dir` the repository's `wrangler.toml` made to serve `main`
/// (an already built `index.js`; wrangler must not rebuild or watch) with
/// `vars` added or overridden, and a `.dev.vars` holding the producer
/// secret. Returns the config's path.
///
/// # Errors
/// When a file cannot be read or written.
pub fn gateway_config(
    root: &Path,
    dir: &Path,
    main: &Path,
    vars: &[(&str, &str)],
    producer_secret: &str,
) -> Result<PathBuf, String> {
    let source = root.join("wrangler.toml");
    let text = fs::read_to_string(&source)
        .map_err(|e| format!("cannot read {}: {e}", source.display()))?;
    let mut config: toml::Table =
        toml::from_str(&text).map_err(|e| format!("{} is not TOML: {e}", source.display()))?;
    config.remove("build");
    config.insert(
        "main".into(),
        toml::Value::String(main.display().to_string()),
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
    let rendered = toml::to_string(&config).map_err(|e| e.to_string())?;
    let path = dir.join("wrangler.toml");
    fs::write(&path, rendered).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    // wrangler reads secrets for `dev` from .dev.vars beside the config.
    fs::write(
        dir.join(".dev.vars"),
        format!("PRODUCER_SECRET={producer_secret}\n"),
    )
    .map_err(|e| format!("cannot write .dev.vars: {e}"))?;
    Ok(path)
}

/// A log with every `token=` value and `Bearer` credential masked: wrangler's
/// request lines hold upgrade URLs, and nothing may print a token.
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

/// A loopback port nobody listens on right now.
///
/// # Errors
/// When the system has none to give.
pub fn free_port() -> Result<u16, String> {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| format!("no free port: {e}"))
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
