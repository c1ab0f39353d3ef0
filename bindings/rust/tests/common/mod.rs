//! Helpers shared by the integration tests: unique socket paths, in-process
//! connection pairs, and the Go consumer (`goipc pong`) as a child process.

#![allow(dead_code)] // each test crate uses a different subset

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc;
use std::time::Duration;

use goipc::{Conn, Listener, Options};

/// Generous bound for anything that should be quick; only hit on failure.
pub const LONG: Duration = Duration::from_secs(10);

/// A fresh socket path under the temp dir (short: socket paths are at
/// most 107 bytes). The file is removed by the listener that binds it.
pub fn sock_path(tag: &str) -> PathBuf {
    static N: AtomicU32 = AtomicU32::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let p = std::env::temp_dir().join(format!("goipc-rs-{}-{tag}-{n}.sock", std::process::id()));
    let _ = std::fs::remove_file(&p);
    p
}

/// A connected pair in this process: (dialer side, accepted side).
pub fn pair_with(dial_opts: &Options, listen_opts: &Options) -> (Conn, Conn) {
    let path = sock_path("pair");
    let l = Listener::bind_with(&path, listen_opts).expect("bind");
    std::thread::scope(|s| {
        let acc = s.spawn(|| l.accept_timeout(LONG).expect("accept"));
        let d = Conn::dial_with(&path, dial_opts, Some(LONG)).expect("dial");
        (d, acc.join().unwrap())
    })
}

pub fn pair() -> (Conn, Conn) {
    pair_with(&Options::default(), &Options::default())
}

/// build/bin/goipc, or $GOIPC_BIN.
pub fn goipc_bin() -> PathBuf {
    let p = match std::env::var_os("GOIPC_BIN") {
        Some(p) => PathBuf::from(p),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../build/bin/goipc"),
    };
    assert!(
        p.is_file(),
        "the Go CLI is missing at {}: run `make build` at the repository root (or set GOIPC_BIN)",
        p.display()
    );
    p
}

/// A built example of this crate (cargo test builds them next to the test
/// binaries: target/<profile>/examples/NAME).
pub fn example_bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().unwrap().parent().unwrap().join("examples");
    let p = dir.join(name);
    assert!(p.is_file(), "example {name} not built at {}", p.display());
    p
}

/// A child process that prints a ready line on stdout; killed (SIGKILL)
/// and reaped when dropped.
pub struct Proc {
    pub child: Child,
    pub path: PathBuf,
    /// Lines of stdout after the ready line.
    pub lines: mpsc::Receiver<String>,
}

impl Proc {
    /// Runs `cmd` with stdout piped and waits (at most LONG) for a stdout
    /// line containing `ready`. Not a sleep: it returns as soon as the
    /// child says it listens.
    pub fn start(mut cmd: Command, path: &Path, ready: &str) -> Proc {
        let mut child = cmd.stdout(Stdio::piped()).spawn().unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"));
        let out = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut p = Proc { child, path: path.to_owned(), lines: rx };
        loop {
            match p.lines.recv_timeout(LONG) {
                Ok(line) if line.contains(ready) => return p,
                Ok(_) => continue,
                Err(e) => {
                    let status = p.child.try_wait();
                    panic!("{cmd:?}: no ready line {ready:?} ({e}; child status {status:?})");
                }
            }
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGKILL (std's Child::kill sends SIGKILL on Unix).
    pub fn kill(&mut self) {
        self.child.kill().expect("kill");
    }

    /// Waits for the child to exit (after kill: at once).
    pub fn wait(&mut self) -> std::process::ExitStatus {
        self.child.wait().expect("wait")
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.path);
    }
}

/// `goipc pong --listen PATH [extra...]`, ready when it says so.
pub fn go_pong(extra: &[&str]) -> Proc {
    let path = sock_path("gopong");
    let mut cmd = Command::new(goipc_bin());
    cmd.arg("pong").arg("--listen").arg(&path).args(extra);
    Proc::start(cmd, &path, "goipc pong: listening on")
}

/// The call tests' servers' reply: the request reversed, then its length
/// (u32 LE), so that a reply delivered to another call cannot pass for
/// its own.
pub fn answer_for(req: &[u8]) -> Vec<u8> {
    let mut out: Vec<u8> = req.iter().rev().copied().collect();
    out.extend_from_slice(&u32::try_from(req.len()).unwrap().to_le_bytes());
    out
}

/// Call request `seq` of caller `caller` (a thread or task): its ids
/// first, then 0-199 more bytes.
pub fn request_for(caller: usize, seq: usize) -> Vec<u8> {
    let n = 16 + (caller * 7 + seq * 13) % 200;
    let mut b = Vec::with_capacity(n);
    b.extend_from_slice(&(caller as u64).to_le_bytes());
    b.extend_from_slice(&(seq as u64).to_le_bytes());
    b.extend((16..n).map(|i| (caller ^ seq ^ i) as u8));
    b
}

/// Deterministic test bytes.
pub fn pattern(len: usize, seed: u64) -> Vec<u8> {
    (0..len).map(|i| (i as u64).wrapping_mul(31).wrapping_add(seed.wrapping_mul(7)) as u8).collect()
}

/// poll(2) on one descriptor: true if readable within `ms` (0: now). A
/// poll interrupted by a signal (the Go runtime in this process sends
/// some) is restarted for the time left.
pub fn poll_readable(fd: std::os::fd::RawFd, ms: i32) -> bool {
    #[repr(C)]
    struct PollFd {
        fd: i32,
        events: i16,
        revents: i16,
    }
    const POLLIN: i16 = 1;
    unsafe extern "C" {
        fn poll(fds: *mut PollFd, n: u64, timeout: i32) -> i32;
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_millis(ms.max(0) as u64);
    loop {
        let mut p = PollFd { fd, events: POLLIN, revents: 0 };
        let left = deadline.saturating_duration_since(std::time::Instant::now()).as_millis() as i32;
        // SAFETY: one valid pollfd, for the duration of the call.
        let n = unsafe { poll(&mut p, 1, left) };
        if n < 0 {
            let err = std::io::Error::last_os_error();
            assert_eq!(err.kind(), std::io::ErrorKind::Interrupted, "poll failed: {err}");
            continue;
        }
        return n == 1 && p.revents & POLLIN != 0;
    }
}
