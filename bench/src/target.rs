//! The systems under test: the gateway's release build and the JavaScript
//! baselines of `bench/baselines/`, each served by its own `wrangler dev
//! --local` (the same workerd) on a free loopback port with its own
//! persistence directory, and restartable on it.

use std::fs::{self, File};
use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;

/// How long wrangler may take to answer `GET /healthz`.
const START_TIMEOUT: Duration = Duration::from_secs(120);

/// Runs the command in the background and waits on its own stdin, a pipe only
/// the benchmark holds: when it closes (stop, or the benchmark died), the
/// whole process group (this shell, wrangler, workerd) is killed.
const WATCHDOG: &str = r#"
"$@" </dev/null &
read -r _ || true
trap '' TERM
kill -TERM 0 2>/dev/null
sleep 3
kill -KILL 0 2>/dev/null
"#;

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
            Self::Gateway => None,
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
    root: PathBuf,
    dir: tempfile::TempDir,
    port: u16,
    secret: String,
    build: PathBuf,
    starts: u32,
    running: Option<Running>,
}

#[derive(Debug)]
struct Running {
    child: Child,
    lifeline: Option<ChildStdin>,
    group: Pid,
    log: PathBuf,
}

impl Target {
    /// Starts `kind` (the gateway from `build`, its `index.js`) and waits
    /// until it is healthy.
    ///
    /// # Errors
    /// When wrangler cannot start or does not become healthy.
    pub fn start(kind: Kind, root: &Path, build: &Path) -> Result<Self, String> {
        let dir = tempfile::Builder::new()
            .prefix("gateway-bench-")
            .tempdir()
            .map_err(|e| format!("temp dir: {e}"))?;
        let mut target = Self {
            kind,
            root: root.to_owned(),
            dir,
            port: free_port()?,
            secret: format!("bench-producer-secret-{}", std::process::id()),
            build: build.to_owned(),
            starts: 0,
            running: None,
        };
        if kind == Kind::Gateway {
            target.write_gateway_config()?;
        }
        fs::create_dir_all(target.state_dir()).map_err(|e| format!("state dir: {e}"))?;
        target.spawn()?;
        Ok(target)
    }

    /// `127.0.0.1:PORT`
    #[must_use]
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
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

    /// Everything wrangler and workerd printed since the last start.
    #[must_use]
    pub fn log(&self) -> String {
        self.running
            .as_ref()
            .map(|r| fs::read_to_string(&r.log).unwrap_or_default())
            .unwrap_or_default()
    }

    /// Stops and starts again on the same port and storage.
    ///
    /// # Errors
    /// When it does not become healthy again.
    pub fn restart(&mut self) -> Result<(), String> {
        self.stop();
        self.spawn()
    }

    /// Stops wrangler and workerd (the process group); storage stays.
    pub fn stop(&mut self) {
        let Some(mut running) = self.running.take() else {
            return;
        };
        drop(running.lifeline.take());
        let _ = killpg(running.group, Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(6);
        loop {
            let _ = running.child.try_wait();
            if killpg(running.group, None).is_err() {
                break;
            }
            if Instant::now() > deadline {
                let _ = killpg(running.group, Signal::SIGKILL);
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = running.child.wait();
    }

    fn write_gateway_config(&self) -> Result<(), String> {
        let source = self.root.join("wrangler.toml");
        let text = fs::read_to_string(&source).map_err(|e| format!("wrangler.toml: {e}"))?;
        let mut config: toml::Table =
            toml::from_str(&text).map_err(|e| format!("wrangler.toml: {e}"))?;
        // scripts/bench.sh builds once; wrangler must not rebuild or watch.
        config.remove("build");
        let main = self.build.join("index.js");
        config.insert(
            "main".into(),
            toml::Value::String(main.display().to_string()),
        );
        let rendered = toml::to_string(&config).map_err(|e| e.to_string())?;
        fs::write(self.dir.path().join("wrangler.toml"), rendered).map_err(|e| e.to_string())?;
        fs::write(
            self.dir.path().join(".dev.vars"),
            format!("PRODUCER_SECRET={}\n", self.secret),
        )
        .map_err(|e| e.to_string())
    }

    fn spawn(&mut self) -> Result<(), String> {
        self.starts += 1;
        let dir = self.dir.path();
        let log = dir.join(format!("wrangler-{}.log", self.starts));
        let out = File::create(&log).map_err(|e| format!("log: {e}"))?;
        let err = out.try_clone().map_err(|e| e.to_string())?;
        let wrangler = self.root.join("node_modules/.bin/wrangler");
        if !wrangler.exists() {
            return Err(format!(
                "{} missing: run scripts/setup.sh",
                wrangler.display()
            ));
        }
        let config = self
            .kind
            .config(&self.root)
            .unwrap_or_else(|| dir.join("wrangler.toml"));
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(WATCHDOG)
            .arg("bench-wrangler")
            .arg(&wrangler)
            .args(["dev", "--local", "--ip", "127.0.0.1"])
            .arg("--config")
            .arg(&config)
            .args(["--port", &self.port.to_string()])
            .args(["--inspector-port", &free_port()?.to_string()])
            .arg("--persist-to")
            .arg(self.state_dir())
            .args(["--show-interactive-dev-session", "false"])
            .current_dir(dir)
            .env("WRANGLER_SEND_METRICS", "false")
            .env("WRANGLER_HIDE_BANNER", "true")
            .env("CLOUDFLARE_CF_FETCH_ENABLED", "false")
            .env("WRANGLER_LOG_PATH", dir.join("wrangler-debug-logs"))
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
        let started = Instant::now();
        while !healthz(self.port) {
            let exited = self
                .running
                .as_mut()
                .and_then(|r| r.child.try_wait().ok().flatten());
            if exited.is_some() || started.elapsed() > START_TIMEOUT {
                let log = self.log();
                self.stop();
                return Err(format!(
                    "{} did not answer /healthz (exit {exited:?}); log:\n{log}",
                    self.kind.name()
                ));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(())
    }
}

impl Drop for Target {
    fn drop(&mut self) {
        self.stop();
    }
}

fn free_port() -> Result<u16, String> {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| format!("no free port: {e}"))
}

fn healthz(port: u16) -> bool {
    let Ok(mut stream) = TcpStream::connect((Ipv4Addr::LOCALHOST, port)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let request = "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
    if stream.write_all(request.as_bytes()).is_err() {
        return false;
    }
    let mut head = [0_u8; 12];
    stream.read_exact(&mut head).is_ok() && head.starts_with(b"HTTP/1.1 200")
}
