//! systemd: the notify protocol spoken by the real binary to a real datagram socket (READY=1
//! once the pipeline runs, watchdog pings, RELOADING=1 on SIGHUP, STOPPING=1 on SIGTERM), and
//! the shipped unit file checked by systemd-analyze (verify, and security --offline=yes).

use std::os::unix::net::UnixDatagram;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::common::*;

fn listen(sock: UnixDatagram) -> Arc<Mutex<Vec<String>>> {
    let got = Arc::new(Mutex::new(Vec::new()));
    let g = got.clone();
    sock.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        loop {
            match sock.recv(&mut buf) {
                Ok(n) => g
                    .lock()
                    .unwrap()
                    .push(String::from_utf8_lossy(&buf[..n]).into_owned()),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {}
                Err(_) => return,
            }
        }
    });
    got
}

fn count(got: &Arc<Mutex<Vec<String>>>, line: &str) -> usize {
    got.lock()
        .unwrap()
        .iter()
        .filter(|m| m.lines().any(|l| l == line))
        .count()
}

#[test]
fn notify_protocol_ready_watchdog_reload_stopping() {
    let d = tempfile::tempdir().unwrap();
    let sock_path = d.path().join("notify.sock");
    let got = listen(UnixDatagram::bind(&sock_path).unwrap());
    let cfg = trail_pipeline(d.path()).write();
    let log = std::fs::File::create(d.path().join("daemon.log")).unwrap();
    let mut p = daemon_cmd(&cfg)
        .env("NOTIFY_SOCKET", &sock_path)
        .env("WATCHDOG_USEC", "300000")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    wait_until(30, "READY=1", || count(&got, "READY=1") == 1);
    assert!(
        got.lock().unwrap()[0].contains("STATUS=running"),
        "{:?}",
        got.lock().unwrap()
    );
    // Pings every WATCHDOG_USEC / 2.
    std::thread::sleep(Duration::from_millis(1600));
    let pings = count(&got, "WATCHDOG=1");
    assert!((6..=14).contains(&pings), "{pings} pings in 1.6 s");
    signal(&p, libc::SIGHUP);
    wait_until(30, "RELOADING=1 then READY=1", || {
        count(&got, "RELOADING=1") == 1 && count(&got, "READY=1") == 2
    });
    assert!(
        got.lock()
            .unwrap()
            .iter()
            .any(|m| m.contains("RELOADING=1") && m.contains("MONOTONIC_USEC=")),
        "{:?}",
        got.lock().unwrap()
    );
    signal(&p, libc::SIGTERM);
    wait_until(30, "STOPPING=1", || count(&got, "STOPPING=1") == 1);
    assert!(wait_exit(&mut p, 30).success());
}

fn systemd_analyze() -> Command {
    assert!(
        Command::new("systemd-analyze")
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success()),
        "systemd-analyze is needed (scripts/test.sh installs the systemd package)"
    );
    Command::new("systemd-analyze")
}

#[test]
fn the_unit_file_verifies_and_its_exposure_is_ok() {
    let unit = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("packaging/systemd/trailship.service"),
    )
    .unwrap();
    for directive in [
        "Type=notify",
        "WatchdogSec=",
        "ExecReload=/bin/kill -HUP $MAINPID",
        "DynamicUser=yes",
        "User=trailship",
        "StateDirectory=trailship",
        "ConfigurationDirectory=trailship",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "ProtectHome=yes",
        "PrivateTmp=yes",
        "CapabilityBoundingSet=\n",
        "RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX",
        "SystemCallFilter=@system-service",
    ] {
        assert!(unit.contains(directive), "the unit lacks {directive:?}");
    }
    // systemd-analyze verify wants the binary to exist: the shipped unit, pointing at this build.
    let d = tempfile::tempdir().unwrap();
    let file = d.path().join("trailship.service");
    std::fs::write(&file, unit.replace("/usr/bin/trailship", bin())).unwrap();
    let o = systemd_analyze().arg("verify").arg(&file).output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        o.status.success() && !err.contains("trailship.service"),
        "systemd-analyze verify: {err}"
    );
    let o = systemd_analyze()
        .args(["security", "--offline=yes", "--no-pager"])
        .arg(&file)
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    let line = out
        .lines()
        .find(|l| l.contains("Overall exposure level for trailship.service"))
        .unwrap_or_else(|| panic!("no exposure level: {out}"));
    let mut words = line.rsplit(':').next().unwrap().split_whitespace();
    let score: f64 = words.next().unwrap().parse().unwrap();
    let rating = words.next().unwrap();
    eprintln!("systemd-analyze security --offline=yes: {score} {rating}");
    assert!(
        matches!(rating, "OK" | "SAFE") && score < 2.0,
        "exposure {score} {rating}"
    );
}
