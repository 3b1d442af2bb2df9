//! `signet gateway`: run the relying-party gateway, link certificates to accounts, and
//! benchmark the gateway against nginx with `ssl_verify_client on` (alone, and with OCSP and
//! `proxy_pass` like the gateway).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, Subcommand};
use signet_authority::ServerConfig;
use signet_gateway::accounts::{AccountLink, identity_of_certificate};
use signet_gateway::bench::{BenchResult, LoadClient};
use signet_gateway::{GatewayConfigFile, config::read_certificates};
use signet_pki::issue::CertificateOrder;
use signet_pki::profile::Catalog;
use signet_pki::subject::{CommonName, DnsName, Email, OrganizationName, Subject};
use signet_ra::SystemClock;

/// `signet gateway …`
#[derive(Args)]
pub struct GatewayArgs {
    #[command(subcommand)]
    command: GatewayCommand,
}

#[derive(Subcommand)]
enum GatewayCommand {
    /// Run the mTLS gateway in front of an application.
    Run {
        /// Gateway configuration (TOML); see docs/gateway.md.
        #[arg(long, env = "SIGNET_GATEWAY_CONFIG")]
        config: PathBuf,
    },
    /// Link a certificate identity (subject + issuer DN, or SAN email) to an account.
    Link {
        #[command(flatten)]
        accounts: AccountsFile,
        /// The application's account id (sent upstream as X-Signet-Account).
        #[arg(long)]
        account: String,
        /// Take subject and issuer DN from this certificate (PEM or DER).
        #[arg(long, conflicts_with_all = ["subject_dn", "email"])]
        cert: Option<PathBuf>,
        /// Subject DN as the gateway shows it, e.g. "C=US, O=U.S. Government, …, CN=Ann Smith".
        #[arg(long, requires = "issuer_dn")]
        subject_dn: Option<String>,
        /// Issuer DN (with --subject-dn).
        #[arg(long, requires = "subject_dn")]
        issuer_dn: Option<String>,
        /// Link by the rfc822Name in the certificate's subjectAltName instead.
        #[arg(long)]
        email: Option<String>,
    },
    /// Remove every link to an account.
    Unlink {
        #[command(flatten)]
        accounts: AccountsFile,
        /// Account id.
        #[arg(long)]
        account: String,
    },
    /// Handshakes/s and requests/s of the gateway vs nginx (ssl_verify_client on; once with
    /// `return 200`, once with OCSP and proxy_pass to the same upstream), same certificates,
    /// same run, loopback only.
    Bench(BenchArgs),
}

/// Where the accounts file is: named directly, or found through the gateway configuration.
#[derive(Args)]
#[group(required = true, multiple = false)]
struct AccountsFile {
    /// Gateway configuration whose `accounts` file to edit.
    #[arg(long, env = "SIGNET_GATEWAY_CONFIG")]
    config: Option<PathBuf>,
    /// The accounts file itself.
    #[arg(long)]
    accounts: Option<PathBuf>,
}

impl AccountsFile {
    fn path(&self) -> Result<PathBuf, Box<dyn std::error::Error>> {
        match (&self.accounts, &self.config) {
            (Some(a), _) => Ok(a.clone()),
            (None, Some(c)) => Ok(GatewayConfigFile::from_file(c)?.accounts_path(c.parent().unwrap_or(Path::new(".")))),
            (None, None) => Err("give --config or --accounts".into()),
        }
    }
}

#[derive(Args)]
struct BenchArgs {
    /// Seconds per measurement (four measurements in all).
    #[arg(long, default_value_t = 3)]
    seconds: u64,
    /// Concurrent client connections.
    #[arg(long, default_value_t = 8)]
    concurrency: usize,
    /// The nginx binary.
    #[arg(long, default_value = "nginx")]
    nginx: PathBuf,
}

/// Runs `signet gateway …`.
pub async fn run(args: GatewayArgs) -> Result<(), Box<dyn std::error::Error>> {
    match args.command {
        GatewayCommand::Run { config } => {
            let base = config.parent().unwrap_or(Path::new(".")).to_owned();
            let cfg = GatewayConfigFile::from_file(&config)?.validate(&base, &Catalog::default_eca())?;
            let running = signet_gateway::spawn(cfg, Arc::new(SystemClock)).await?;
            eprintln!("signet gateway listening on {}", running.addr);
            tokio::select! {
                r = running.task => r?,
                _ = tokio::signal::ctrl_c() => eprintln!("shutting down"),
            }
        }
        GatewayCommand::Link { accounts, account, cert, subject_dn, issuer_dn, email } => {
            let path = accounts.path()?;
            let link = match (cert, email) {
                (Some(c), _) => {
                    let bytes = std::fs::read(&c).map_err(|e| format!("{}: {e}", c.display()))?;
                    let (subject, issuer, _) = identity_of_certificate(&bytes)?;
                    AccountLink { account, subject_dn: Some(subject), issuer_dn: Some(issuer), email: None }
                }
                (None, Some(e)) => AccountLink { account, subject_dn: None, issuer_dn: None, email: Some(e) },
                (None, None) => AccountLink { account, subject_dn, issuer_dn, email: None },
            };
            signet_gateway::accounts::link(&path, link.clone())?;
            println!("linked {} → {:?} in {}", describe(&link), link.account, path.display());
        }
        GatewayCommand::Unlink { accounts, account } => {
            let path = accounts.path()?;
            let n = signet_gateway::accounts::unlink(&path, &account)?;
            println!("removed {n} link(s) to {account:?} from {}", path.display());
        }
        GatewayCommand::Bench(b) => bench(b).await?,
    }
    Ok(())
}

fn describe(l: &AccountLink) -> String {
    match (&l.subject_dn, &l.issuer_dn, &l.email) {
        (Some(s), Some(i), _) => format!("subject {s:?} issued by {i:?}"),
        (_, _, Some(e)) => format!("email {e}"),
        _ => "?".into(),
    }
}

/// Generates a P-256 key and CSR with the openssl CLI and has the CA issue `order`.
async fn issue(
    state: &signet_authority::Core,
    dir: &Path,
    name: &str,
    order: CertificateOrder,
) -> Result<(PathBuf, PathBuf), Box<dyn std::error::Error>> {
    let key = dir.join(format!("{name}.key"));
    let csr = dir.join(format!("{name}.csr"));
    let out = tokio::process::Command::new("openssl")
        .args(["req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-subj"])
        .arg(format!("/CN={name}"))
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&csr)
        .output()
        .await
        .map_err(|e| format!("openssl: {e}"))?;
    if !out.status.success() {
        return Err(format!("openssl req: {}", String::from_utf8_lossy(&out.stderr)).into());
    }
    let cert = state.issue("bench", &order, &std::fs::read(&csr)?).await?;
    let pem = |der: &[u8]| signet_pki::to_pem("CERTIFICATE", der);
    let chain = dir.join(format!("{name}.pem"));
    std::fs::write(&chain, format!("{}{}", pem(&cert.der), pem(state.certificates.issuing.as_slice())))?;
    Ok((chain, key))
}

/// A static "ok" HTTP/1.1 server: the application behind the gateway.
async fn static_upstream() -> Result<SocketAddr, std::io::Error> {
    use hyper_util::rt::TokioIo;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let _ = tcp.set_nodelay(true);
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(|_req| async {
                    Ok::<_, std::convert::Infallible>(hyper::Response::new(http_body_util::Full::new(
                        bytes::Bytes::from_static(b"ok\n"),
                    )))
                });
                let _ = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(tcp), svc).await;
            });
        }
    });
    Ok(addr)
}

fn free_port() -> Result<u16, std::io::Error> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// nginx as the peer, same server certificate, `ssl_verify_client on` against the same root,
/// on two ports: `addr` answers a static 200 (TLS and chain only); `proxy_addr` does what the
/// gateway does — OCSP for the leaf (`ssl_ocsp leaf`, answers cached like the gateway's) and
/// `proxy_pass` to the same upstream over kept-alive connections.
struct Nginx {
    child: tokio::process::Child,
    bin: PathBuf,
    dir: PathBuf,
    addr: SocketAddr,
    proxy_addr: SocketAddr,
}

impl Nginx {
    async fn start(
        bin: &Path,
        dir: &Path,
        chain: &Path,
        key: &Path,
        root: &Path,
        ocsp_url: &str,
        upstream: SocketAddr,
    ) -> Result<Self, Box<dyn std::error::Error>> {
        let port = free_port()?;
        let proxy_port = free_port()?;
        let tls = format!(
            "ssl_certificate {chain};\n    ssl_certificate_key {key};\n    ssl_protocols TLSv1.2 TLSv1.3;\n    \
             ssl_client_certificate {root};\n    ssl_verify_client on;\n    ssl_verify_depth 3;\n    \
             ssl_session_tickets off;\n",
            chain = chain.display(),
            key = key.display(),
            root = root.display(),
        );
        let conf = format!(
            "worker_processes 2;\npid {dir}/nginx.pid;\nerror_log {dir}/nginx-error.log warn;\n\
             events {{ worker_connections 1024; }}\n\
             http {{\n  access_log off;\n  client_body_temp_path {dir}/body;\n  proxy_temp_path {dir}/proxy;\n\
               fastcgi_temp_path {dir}/fastcgi;\n  uwsgi_temp_path {dir}/uwsgi;\n  scgi_temp_path {dir}/scgi;\n\
               keepalive_requests 1000000;\n\
               upstream app {{ server {upstream}; keepalive 64; }}\n\
               ssl_ocsp_cache shared:ocsp:10m;\n\
               server {{\n    listen 127.0.0.1:{port} ssl;\n    {tls}\
                 location / {{ return 200 \"ok\\n\"; }}\n  }}\n\
               server {{\n    listen 127.0.0.1:{proxy_port} ssl;\n    {tls}\
                 ssl_ocsp leaf;\n    ssl_ocsp_responder {ocsp_url};\n\
                 location / {{\n      proxy_pass http://app;\n      proxy_http_version 1.1;\n\
                   proxy_set_header Connection \"\";\n      proxy_set_header X-Signet-Subject $ssl_client_s_dn;\n\
                   proxy_set_header X-Signet-Serial $ssl_client_serial;\n    }}\n  }}\n}}\n",
            dir = dir.display(),
        );
        let conf_path = dir.join("nginx.conf");
        std::fs::write(&conf_path, conf)?;
        let child = tokio::process::Command::new(bin)
            .arg("-p")
            .arg(dir)
            .arg("-c")
            .arg(&conf_path)
            .args(["-g", "daemon off;"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("{}: {e} (install nginx: apt-get install nginx-light)", bin.display()))?;
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let proxy_addr: SocketAddr = ([127, 0, 0, 1], proxy_port).into();
        let mut nginx = Self { child, bin: bin.to_owned(), dir: dir.to_owned(), addr, proxy_addr };
        for _ in 0..100 {
            if tokio::net::TcpStream::connect(addr).await.is_ok()
                && tokio::net::TcpStream::connect(proxy_addr).await.is_ok()
            {
                return Ok(nginx);
            }
            if let Some(status) = nginx.child.try_wait()? {
                return Err(format!("nginx exited ({status}); see {}/nginx-error.log", dir.display()).into());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        nginx.stop().await;
        Err("nginx did not start listening".into())
    }

    /// Graceful stop through the master (which stops its workers), then the child.
    async fn stop(&mut self) {
        let _ = tokio::process::Command::new(&self.bin)
            .arg("-p")
            .arg(&self.dir)
            .arg("-c")
            .arg(self.dir.join("nginx.conf"))
            .args(["-s", "stop"])
            .status()
            .await;
        if tokio::time::timeout(Duration::from_secs(5), self.child.wait()).await.is_err() {
            let _ = self.child.kill().await;
        }
    }
}

async fn measure(name: &str, client: &LoadClient, seconds: u64, concurrency: usize) -> (BenchResult, BenchResult) {
    let d = Duration::from_secs(seconds);
    // Warm up: the gateway's first request fetches OCSP; both get a pooled state.
    let _ = client.requests(Duration::from_millis(300), 1).await;
    let h = client.handshakes(d, concurrency).await;
    let r = client.requests(d, concurrency).await;
    println!(
        "{name:<8} handshakes/s {:>9.0} (failed {:>4})   requests/s {:>9.0} (failed {:>4})",
        h.per_second(),
        h.failed,
        r.per_second(),
        r.failed
    );
    (h, r)
}

async fn bench(args: BenchArgs) -> Result<(), Box<dyn std::error::Error>> {
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path();
    let settings =
        ServerConfig { data_dir: Some(dir.join("ca")), listen: Some("127.0.0.1:0".into()), ..Default::default() }
            .into_settings()?;
    let ca = signet_server::spawn(&settings, Arc::new(SystemClock)).await?;
    let state = &ca.state;
    let org = OrganizationName::new("Bench Org")?;
    let (gw_chain, gw_key) = issue(
        state,
        dir,
        "server",
        CertificateOrder {
            profile: "device-tls".into(),
            subject: Subject::Device { organization: org.clone(), dns_names: vec![DnsName::new("localhost")?] },
            validity_years: 1,
        },
    )
    .await?;
    let (client_chain, client_key) = issue(
        state,
        dir,
        "client",
        CertificateOrder {
            profile: "medium-token-identity".into(),
            subject: Subject::Person {
                common_name: CommonName::new("Bench User")?,
                organization: org,
                email: Email::new("bench@example.test")?,
            },
            validity_years: 1,
        },
    )
    .await?;
    let root = dir.join("root.pem");
    std::fs::write(&root, signet_pki::to_pem("CERTIFICATE", state.certificates.root.as_slice()))?;
    let accounts = dir.join("accounts.toml");
    signet_gateway::accounts::link(
        &accounts,
        AccountLink {
            account: "bench".into(),
            subject_dn: None,
            issuer_dn: None,
            email: Some("bench@example.test".into()),
        },
    )?;

    let upstream = static_upstream().await?;
    let cfg = GatewayConfigFile {
        listen: Some("127.0.0.1:0".into()),
        upstream: Some(format!("http://{upstream}")),
        server_cert: Some(gw_chain.clone()),
        server_key: Some(gw_key.clone()),
        trust_anchors: vec![root.clone()],
        required_policies: vec!["medium-token".into(), "medium-hardware".into()],
        accounts: Some(accounts),
        ..Default::default()
    }
    .validate(dir, &Catalog::default_eca())?;
    let gateway = signet_gateway::spawn(cfg, Arc::new(SystemClock)).await?;
    let ocsp_url = format!("{}/ocsp", ca.base_url);
    let mut nginx = Nginx::start(&args.nginx, dir, &gw_chain, &gw_key, &root, &ocsp_url, upstream).await?;

    let chain = read_certificates(&client_chain)?;
    let key = {
        use rustls_pki_types::pem::PemObject;
        rustls_pki_types::PrivateKeyDer::from_pem_file(&client_key)?
    };
    let root_der = state.certificates.root.as_slice().to_vec();
    let gw_client = LoadClient::new(gateway.addr, "localhost", &root_der, chain.clone(), key.clone_key())?;
    let nginx_client = LoadClient::new(nginx.addr, "localhost", &root_der, chain.clone(), key.clone_key())?;
    let proxy_client = LoadClient::new(nginx.proxy_addr, "localhost", &root_der, chain, key)?;

    println!(
        "gateway vs nginx (ssl_verify_client on), P-256 client and server certificates, TLS 1.3, no resumption, \
         {} connections, {} s per measurement",
        args.concurrency, args.seconds
    );
    async {
        let (gh, gr) = measure("gateway", &gw_client, args.seconds, args.concurrency).await;
        let (nh, nr) = measure("nginx", &nginx_client, args.seconds, args.concurrency).await;
        let (ph, pr) = measure("nginx+", &proxy_client, args.seconds, args.concurrency).await;
        let ratio = |a: &BenchResult, b: &BenchResult| a.per_second() / b.per_second().max(f64::MIN_POSITIVE);
        println!(
            "ratio gateway/nginx (return 200):  handshakes {:.2}, requests {:.2}",
            ratio(&gh, &nh),
            ratio(&gr, &nr)
        );
        println!(
            "ratio gateway/nginx+ (ssl_ocsp leaf, proxy_pass to the same upstream): handshakes {:.2}, requests {:.2}",
            ratio(&gh, &ph),
            ratio(&gr, &pr)
        );
    }
    .await;
    nginx.stop().await;
    gateway.task.abort();
    ca.task.abort();
    Ok(())
}
