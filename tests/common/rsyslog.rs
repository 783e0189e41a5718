//! A real rsyslog (Debian's package) on free loopback ports: plain TCP, TLS (a throwaway
//! certificate) and UDP, each input writing the messages it receives (`%msg%`, one per line)
//! to its own file. Tests fail, not skip, when rsyslogd is missing: `scripts/test.sh` installs
//! it.
#![allow(dead_code)]

use std::net::{TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Rsyslog {
    child: Option<Child>,
    pub dir: tempfile::TempDir,
    pub tcp: u16,
    pub tls: u16,
    /// TLS that requires a client certificate from the test CA.
    pub mtls: u16,
    pub udp: u16,
    max_message_size: String,
}

fn free_tcp() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn free_udp() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn rsyslogd() -> &'static str {
    if Path::new("/usr/sbin/rsyslogd").exists() {
        "/usr/sbin/rsyslogd"
    } else {
        "rsyslogd"
    }
}

impl Rsyslog {
    /// `max_message_size` as rsyslog writes it (`8k`, `256k`).
    pub fn start(max_message_size: &str) -> Rsyslog {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        // A throwaway CA and a server certificate it signed (for 127.0.0.1 and localhost).
        let openssl = |args: &[&str]| {
            let out = Command::new("openssl")
                .current_dir(d)
                .args(args)
                .output()
                .expect("openssl");
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        openssl(&[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "2",
            "-subj",
            "/CN=trailship test CA",
        ]);
        openssl(&[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "key.pem",
            "-out",
            "server.csr",
            "-subj",
            "/CN=localhost",
        ]);
        std::fs::write(
            d.join("server.ext"),
            "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n",
        )
        .unwrap();
        openssl(&[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "cert.pem",
            "-days",
            "2",
            "-extfile",
            "server.ext",
        ]);
        // A client certificate from the same CA, for the mutual-TLS input.
        openssl(&[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "client.key",
            "-out",
            "client.csr",
            "-subj",
            "/CN=trailship",
        ]);
        std::fs::write(
            d.join("client.ext"),
            "basicConstraints=CA:FALSE\nextendedKeyUsage=clientAuth\n",
        )
        .unwrap();
        openssl(&[
            "x509",
            "-req",
            "-in",
            "client.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "client.pem",
            "-days",
            "2",
            "-extfile",
            "client.ext",
        ]);
        let mut r = Rsyslog {
            child: None,
            tcp: free_tcp(),
            tls: free_tcp(),
            mtls: free_tcp(),
            udp: free_udp(),
            max_message_size: max_message_size.into(),
            dir,
        };
        r.launch();
        r
    }

    /// The client certificate and key the mutual-TLS input accepts.
    pub fn client_cert(&self) -> (PathBuf, PathBuf) {
        (
            self.dir.path().join("client.pem"),
            self.dir.path().join("client.key"),
        )
    }

    /// The CA that signed the server's certificate (what a client trusts).
    pub fn ca(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    pub fn file(&self, input: &str) -> PathBuf {
        self.dir.path().join(format!("{input}.log"))
    }

    fn launch(&mut self) {
        let d = self.dir.path();
        let p = |f: &str| d.join(f).to_string_lossy().to_string();
        let conf = format!(
            r#"global(workDirectory="{dir}" maxMessageSize="{max}"
       DefaultNetstreamDriverCAFile="{ca}" DefaultNetstreamDriverCertFile="{cert}"
       DefaultNetstreamDriverKeyFile="{key}")
module(load="imtcp" MaxSessions="200")
module(load="imudp")
template(name="msgonly" type="string" string="%msg%\n")
ruleset(name="tcp") {{ action(type="omfile" file="{tcp_log}" template="msgonly") }}
ruleset(name="tls") {{ action(type="omfile" file="{tls_log}" template="msgonly") }}
ruleset(name="udp") {{ action(type="omfile" file="{udp_log}" template="msgonly") }}
ruleset(name="mtls") {{ action(type="omfile" file="{mtls_log}" template="msgonly") }}
input(type="imtcp" address="127.0.0.1" port="{tcp}" ruleset="tcp")
input(type="imtcp" address="127.0.0.1" port="{tls}" ruleset="tls" streamDriver.name="gtls" streamDriver.mode="1" streamDriver.authMode="anon")
input(type="imtcp" address="127.0.0.1" port="{mtls}" ruleset="mtls" streamDriver.name="gtls" streamDriver.mode="1" streamDriver.authMode="x509/certvalid")
input(type="imudp" address="127.0.0.1" port="{udp}" ruleset="udp" rcvbufSize="16m")
"#,
            dir = d.display(),
            max = self.max_message_size,
            ca = p("ca.pem"),
            cert = p("cert.pem"),
            key = p("key.pem"),
            tcp_log = p("tcp.log"),
            tls_log = p("tls.log"),
            udp_log = p("udp.log"),
            mtls_log = p("mtls.log"),
            mtls = self.mtls,
            tcp = self.tcp,
            tls = self.tls,
            udp = self.udp,
        );
        std::fs::write(d.join("rsyslog.conf"), conf).unwrap();
        let _ = std::fs::remove_file(d.join("rsyslog.pid"));
        let child = Command::new(rsyslogd())
            .args(["-n", "-f"])
            .arg(d.join("rsyslog.conf"))
            .arg("-i")
            .arg(d.join("rsyslog.pid"))
            .stdout(Stdio::null())
            .stderr(Stdio::from(
                std::fs::File::create(d.join("rsyslogd.err")).unwrap(),
            ))
            .spawn()
            .expect("rsyslogd is required for the syslog tests: run scripts/test.sh (apt-get install rsyslog rsyslog-gnutls)");
        let deadline = Instant::now() + Duration::from_secs(20);
        for port in [self.tcp, self.tls, self.mtls] {
            while TcpStream::connect(("127.0.0.1", port)).is_err() {
                assert!(
                    Instant::now() < deadline,
                    "rsyslogd did not listen on {port}: {}",
                    std::fs::read_to_string(d.join("rsyslogd.err")).unwrap_or_default()
                );
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        // imudp binds at the same time as imtcp; give it a moment.
        std::thread::sleep(Duration::from_millis(200));
        self.child = Some(child);
    }

    /// Stop it (SIGTERM, flushing its files), e.g. to test reconnection.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            // SAFETY: signalling our own child.
            unsafe {
                libc::kill(c.id() as libc::pid_t, libc::SIGTERM);
            }
            let _ = c.wait();
        }
    }

    /// Start it again on the same ports.
    pub fn restart(&mut self) {
        self.stop();
        self.launch();
    }

    /// The messages an input wrote, one per line (surrounding spaces trimmed).
    pub fn received(&self, input: &str) -> Vec<String> {
        std::fs::read_to_string(self.file(input))
            .unwrap_or_default()
            .lines()
            .map(|l| l.trim().to_string())
            .filter(|l| !l.is_empty())
            .collect()
    }

    /// Wait until an input wrote at least `n` messages.
    pub fn wait_for(&self, input: &str, n: usize, secs: u64) -> Vec<String> {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let got = self.received(input);
            if got.len() >= n || Instant::now() > deadline {
                return got;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Rsyslog {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
