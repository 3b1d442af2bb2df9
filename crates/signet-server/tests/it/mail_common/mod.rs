//! Real mail plumbing for the mail tests: an SMTP server (Python's `aiosmtpd`, writing each
//! message it accepts into a Maildir) and a reader that parses messages with Python's `email`
//! package, an implementation independent of the one that wrote them.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::process::{Child, Command};

/// A free TCP port on 127.0.0.1 (nothing listens on it once this returns).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// One message as a mail reader sees it.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct Received {
    /// `From` header.
    pub from: String,
    /// `To` header.
    pub to: String,
    /// Envelope recipients, as the SMTP server recorded them (`X-RcptTo`); empty for files.
    pub rcpt_to: String,
    /// Decoded subject.
    pub subject: String,
    /// `Message-ID` header.
    pub message_id: String,
    /// `Date` header.
    pub date: String,
    /// The decoded text body.
    pub body: String,
}

const PARSE: &str = r#"
import email, email.policy, json, sys
out = []
for path in sys.argv[1:]:
    with open(path, 'rb') as f:
        m = email.message_from_binary_file(f, policy=email.policy.default)
    out.append({k: str(m.get(h, '')) for k, h in [('from', 'From'), ('to', 'To'), ('rcpt_to', 'X-RcptTo'),
        ('subject', 'Subject'), ('message_id', 'Message-ID'), ('date', 'Date')]} | {'body': m.get_content()})
print(json.dumps(out))
"#;

/// Parses the message files in `dir` (oldest name first) with Python's `email` package.
pub fn read_messages(dir: &Path) -> Vec<Received> {
    let mut files: Vec<PathBuf> = match std::fs::read_dir(dir) {
        Ok(entries) => entries.map(|e| e.unwrap().path()).filter(|p| !is_hidden(p)).collect(),
        Err(_) => return Vec::new(),
    };
    files.sort();
    if files.is_empty() {
        return Vec::new();
    }
    let out = std::process::Command::new("python3").arg("-c").arg(PARSE).args(&files).output().unwrap();
    assert!(out.status.success(), "parsing mail: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

fn is_hidden(p: &Path) -> bool {
    p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with('.'))
}

/// A running SMTP server that keeps every message it accepts. Stopped when dropped.
pub struct SmtpSink {
    _child: Child,
    port: u16,
    maildir: tempfile::TempDir,
}

impl SmtpSink {
    /// Starts `aiosmtpd` on 127.0.0.1:`port` and waits until it accepts connections.
    pub async fn start(port: u16) -> Self {
        Self::start_with(port, &[]).await
    }

    /// Starts `aiosmtpd` offering STARTTLS with this certificate and key, and (aiosmtpd's
    /// default) refusing mail from a client that did not upgrade.
    pub async fn start_starttls(port: u16, tls: &TestTls) -> Self {
        Self::start_with(port, &["--tlscert".as_ref(), tls.cert.as_os_str(), "--tlskey".as_ref(), tls.key.as_os_str()])
            .await
    }

    async fn start_with(port: u16, options: &[&std::ffi::OsStr]) -> Self {
        let maildir = tempfile::tempdir().unwrap();
        let child = Command::new("python3")
            .args(["-m", "aiosmtpd", "-n", "-l", &format!("127.0.0.1:{port}")])
            .args(options)
            .args(["-c", "aiosmtpd.handlers.Mailbox"])
            // Maildir is created only where nothing exists yet.
            .arg(maildir.path().join("box"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("python3 -m aiosmtpd (pip install aiosmtpd)");
        for _ in 0..100 {
            if tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
                return Self { _child: child, port, maildir };
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("aiosmtpd did not start on port {port}");
    }

    /// Where it listens.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Every message received so far.
    pub fn messages(&self) -> Vec<Received> {
        read_messages(&self.maildir.path().join("box/new"))
    }

    /// Waits up to `timeout` for at least `n` messages.
    pub async fn wait_for(&self, n: usize, timeout: Duration) -> Vec<Received> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let got = self.messages();
            if got.len() >= n || tokio::time::Instant::now() > deadline {
                return got;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// A test CA and a server certificate it issued for 127.0.0.1, made with the OpenSSL CLI.
pub struct TestTls {
    /// The CA certificate (PEM): the relay's trust anchor.
    pub ca: PathBuf,
    /// The server certificate (PEM).
    pub cert: PathBuf,
    /// The server key (PEM).
    pub key: PathBuf,
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = std::process::Command::new("openssl").args(args).current_dir(dir).output().unwrap();
    assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// Writes a CA and a 127.0.0.1 server certificate into `dir`.
pub fn test_tls(dir: &Path) -> TestTls {
    let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"];
    openssl(
        dir,
        &[
            &["req", "-x509"][..],
            &ec,
            &["-keyout", "ca.key", "-out", "ca.pem", "-subj", "/CN=Test SMTP CA", "-days", "2"],
        ]
        .concat(),
    );
    openssl(
        dir,
        &[&["req"][..], &ec, &["-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=127.0.0.1"]].concat(),
    );
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    openssl(
        dir,
        &[
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
            "server.pem",
            "-days",
            "1",
            "-extfile",
            "server.ext",
        ],
    );
    TestTls { ca: dir.join("ca.pem"), cert: dir.join("server.pem"), key: dir.join("server.key") }
}
