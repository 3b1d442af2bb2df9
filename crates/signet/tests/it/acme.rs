//! ACME end to end with independent clients: a real `signet serve` on a temporary SQLite data
//! folder, an EAB key made with `signet admin acme eab create`, and certbot (PyPI) obtaining,
//! being refused and revoking device certificates; OpenSSL checks the chain, the device policy
//! and OCSP. The dns-01 test answers TXT queries from a dnslib (PyPI) server on loopback, and
//! runs over HTTPS with certbot trusting Signet's root through `REQUESTS_CA_BUNDLE`.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use crate::common::{SIGNET, Server, must, ocsp_status, run};

const DEVICE: &str = "2.16.840.1.101.3.2.1.12.9";

fn free_tcp_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// An EAB key for Acme Devices' `acme.example`: (key id, base64url HMAC key).
fn eab_key(data: &Path) -> (String, String) {
    std::fs::create_dir_all(data).unwrap();
    let out = must(
        SIGNET,
        &[
            "admin",
            "acme",
            "eab",
            "create",
            "--data-dir",
            data.to_str().unwrap(),
            "--organization",
            "Acme Devices",
            "--domains",
            "acme.example",
        ],
        &[],
    );
    let field = |name: &str| {
        out.lines().find_map(|l| l.strip_prefix(name)).unwrap_or_else(|| panic!("no {name} in {out}")).to_owned()
    };
    (field("eab-kid: "), field("eab-hmac-key: "))
}

/// A server with `[acme]` settings from `acme_toml`; with `https`, serving HTTPS on a
/// certificate it issues itself for localhost.
fn serve(dir: &Path, acme_toml: &str, https: bool) -> Server {
    let config = dir.join("signet.toml");
    let tls = if https {
        format!("[tls]\nself_issued = [\"localhost\"]\nhttp_listen = \"127.0.0.1:{}\"\n", free_tcp_port())
    } else {
        String::new()
    };
    std::fs::write(&config, format!("[acme]\n{acme_toml}\n{tls}")).unwrap();
    Server::start(&dir.join("data"), &[("SIGNET_CONFIG", config.to_str().unwrap())])
}

/// certbot with its own config, work and log folders under `dir/certbot`; over HTTPS it
/// trusts Signet's root (of the server whose data folder is `dir/data`) and nothing else.
fn certbot(dir: &Path, server: &Server, args: &[&str]) -> (bool, String) {
    let cb = dir.join("certbot");
    let directory = format!("{}/acme/directory", server.url);
    let mut all: Vec<&str> = args.to_vec();
    let (config, work, logs) = (cb.join("config"), cb.join("work"), cb.join("logs"));
    all.extend([
        "--server",
        &directory,
        "--non-interactive",
        "--config-dir",
        config.to_str().unwrap(),
        "--work-dir",
        work.to_str().unwrap(),
        "--logs-dir",
        logs.to_str().unwrap(),
    ]);
    let bundle = server.url.starts_with("https://").then(|| pem_of(&dir.join("data"), "root"));
    let env = bundle.iter().map(|b| ("REQUESTS_CA_BUNDLE", b.to_str().unwrap())).collect::<Vec<_>>();
    let (ok, out, err) = run("certbot", &all, &env);
    let log = std::fs::read_to_string(logs.join("letsencrypt.log")).unwrap_or_default();
    (ok, format!("{out}\n{err}\n--- certbot log ---\n{log}"))
}

fn live(dir: &Path, name: &str, file: &str) -> PathBuf {
    dir.join("certbot/config/live").join(name).join(file)
}

fn pem_of(data: &Path, which: &str) -> PathBuf {
    let pem = data.join(format!("ca/{which}.pem"));
    crate::common::der_to_pem("x509", &data.join(format!("ca/{which}.crt")), &pem);
    pem
}

#[test]
fn certbot_gets_a_device_certificate_with_eab_only_inside_its_domains_and_revokes_it() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let data = dir.join("data");
    let (kid, hmac) = eab_key(&data);
    let http01 = free_tcp_port();
    let server = serve(
        dir,
        &format!("http01_port = {http01}\nresolve = {{ \"device.acme.example\" = \"127.0.0.1\" }}\n"),
        false,
    );
    let port = http01.to_string();
    let standalone = ["certonly", "--standalone", "--http-01-port", &port, "--http-01-address", "127.0.0.1"];
    let terms = ["--agree-tos", "-m", "ops@acme.example"];

    // Without EAB: certbot reads externalAccountRequired and stops; a client that ignores it
    // (the ACME library certbot is built on, used directly) is refused by the server.
    let (ok, out) = certbot(dir, &server, &[&standalone[..], &terms, &["-d", "device.acme.example"]].concat());
    assert!(!ok && out.contains("external account binding"), "{out}");
    let script = r#"
import sys
from acme import client, messages
from cryptography.hazmat.primitives.asymmetric import ec
import josepy
key = josepy.JWKEC(key=ec.generate_private_key(ec.SECP256R1()))
net = client.ClientNetwork(key, alg=josepy.ES256, user_agent="signet-test")
acme = client.ClientV2(client.ClientV2.get_directory(sys.argv[1], net), net)
try:
    acme.new_account(messages.NewRegistration.from_data(email="ops@acme.example", terms_of_service_agreed=True))
    print("registered")
except messages.Error as e:
    print(e.typ)
"#;
    let answer = must("python3", &["-c", script, &format!("{}/acme/directory", server.base)], &[]);
    assert_eq!(answer.trim(), "urn:ietf:params:acme:error:externalAccountRequired");

    // With EAB: a device certificate for Acme Devices.
    let eab = ["--eab-kid", &kid, "--eab-hmac-key", &hmac];
    let (ok, out) = certbot(dir, &server, &[&standalone[..], &terms, &eab, &["-d", "device.acme.example"]].concat());
    assert!(ok, "{out}");
    let cert = live(dir, "device.acme.example", "cert.pem");
    let text = must("openssl", &["x509", "-in", cert.to_str().unwrap(), "-noout", "-text"], &[]);
    assert!(text.contains("OU = Acme Devices, CN = device.acme.example"), "{text}");
    assert!(text.contains("DNS:device.acme.example") && text.contains("TLS Web Server Authentication"), "{text}");
    let crl = dir.join("crl.der");
    must("curl", &["-sf", "-o", crl.to_str().unwrap(), &format!("{}/crl/issuing.crl", server.base)], &[]);
    let (ok, out) = crate::common::verify(&data, &cert, DEVICE, &crl);
    assert!(ok, "openssl verify with the device policy: {out}");
    let chain = std::fs::read_to_string(live(dir, "device.acme.example", "chain.pem")).unwrap();
    let issuing = std::fs::read_to_string(pem_of(&data, "issuing")).unwrap();
    assert!(chain.contains(issuing.trim()), "the served chain holds the issuing CA");

    // The same account, a name outside acme.example: refused before any challenge.
    let (ok, out) = certbot(dir, &server, &[&standalone[..], &["-d", "www.other.example"]].concat());
    assert!(!ok && out.contains("rejectedIdentifier") && out.contains("not under the domains"), "{out}");

    // The EAB key bound its account: a second account cannot use it.
    let second = tempfile::tempdir().unwrap();
    let (ok, out) =
        certbot(second.path(), &server, &[&standalone[..], &terms, &eab, &["-d", "device.acme.example"]].concat());
    assert!(!ok && out.contains("unauthorized"), "{out}");

    // Revocation by the account shows in OCSP at once.
    let (ok, out) = certbot(
        dir,
        &server,
        &["revoke", "--cert-path", cert.to_str().unwrap(), "--reason", "keycompromise", "--no-delete-after-revoke"],
    );
    assert!(ok, "{out}");
    let (root, issuing) = (pem_of(&data, "root"), pem_of(&data, "issuing"));
    let ocsp = ocsp_status(&issuing, &cert, &server.base, &root);
    assert!(ocsp.contains("cert.pem: revoked") && ocsp.contains("keyCompromise"), "{ocsp}");

    let audit = must(SIGNET, &["audit", "verify", "--data-dir", data.to_str().unwrap()], &[]);
    assert!(audit.contains("audit log intact"), "{audit}");
}

/// A DNS server (dnslib) answering TXT queries from a JSON file of name → values.
struct DnsServer {
    child: Child,
    port: u16,
}

impl DnsServer {
    fn start(records: &Path) -> Self {
        let script = r#"
import json, sys, time
from dnslib import RR, QTYPE, TXT
from dnslib.server import BaseResolver, DNSLogger, DNSServer
class Records(BaseResolver):
    def resolve(self, request, handler):
        reply = request.reply()
        try:
            records = json.load(open(sys.argv[1]))
        except (OSError, ValueError):
            records = {}
        name = str(request.q.qname).rstrip(".").lower()
        if request.q.qtype == QTYPE.TXT:
            for value in records.get(name, []):
                reply.add_answer(RR(request.q.qname, QTYPE.TXT, rdata=TXT(value), ttl=0))
        return reply
# Quiet: stdout closes once the port is read.
server = DNSServer(Records(), port=0, address="127.0.0.1", logger=DNSLogger(logf=lambda _: None))
server.start_thread()
print(server.server.server_address[1], flush=True)
while server.isAlive():
    time.sleep(0.5)
"#;
        let mut child = Command::new("python3")
            .args(["-c", script, records.to_str().unwrap()])
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3 with dnslib (scripts/test.sh installs it)");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        let port = line.trim().parse().unwrap_or_else(|_| panic!("dnslib server did not start: {line:?}"));
        Self { child, port }
    }
}

impl Drop for DnsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Over HTTPS (the server's self-issued certificate, certbot trusting Signet's root): obtains
/// by dns-01, renews, is refused a wrong answer, and revokes.
#[test]
fn certbot_over_https_gets_renews_and_revokes_a_certificate_over_dns01() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let data = dir.join("data");
    let (kid, hmac) = eab_key(&data);
    let records = dir.join("records.json");
    let dns = DnsServer::start(&records);
    let server = serve(dir, &format!("dns_resolver = \"127.0.0.1:{}\"\n", dns.port), true);
    assert!(server.url.starts_with("https://localhost:"), "{}", server.url);
    // certbot's manual hook publishes the TXT value where the DNS server reads it.
    let hook = dir.join("hook.py");
    std::fs::write(
        &hook,
        format!(
            "import json, os\njson.dump({{'_acme-challenge.' + os.environ['CERTBOT_DOMAIN']: \
             [os.environ['CERTBOT_VALIDATION']]}}, open({:?}, 'w'))\n",
            records.to_str().unwrap()
        ),
    )
    .unwrap();
    let auth_hook = format!("python3 {}", hook.display());
    let (ok, out) = certbot(
        dir,
        &server,
        &[
            "certonly",
            "--manual",
            "--preferred-challenges",
            "dns",
            "--manual-auth-hook",
            &auth_hook,
            "--agree-tos",
            "-m",
            "ops@acme.example",
            "--eab-kid",
            &kid,
            "--eab-hmac-key",
            &hmac,
            "-d",
            "dns.acme.example",
        ],
    );
    assert!(ok, "{out}");
    let cert = live(dir, "dns.acme.example", "cert.pem");
    let text = must("openssl", &["x509", "-in", cert.to_str().unwrap(), "-noout", "-ext", "subjectAltName"], &[]);
    assert!(text.contains("DNS:dns.acme.example"), "{text}");
    let crl = dir.join("crl.der");
    must("curl", &["-sf", "-o", crl.to_str().unwrap(), &format!("{}/crl/issuing.crl", server.base)], &[]);
    let (ok, out) = crate::common::verify(&data, &cert, DEVICE, &crl);
    assert!(ok, "{out}");
    let serial = |cert: &Path| must("openssl", &["x509", "-in", cert.to_str().unwrap(), "-noout", "-serial"], &[]);
    let first = serial(&cert);

    // Renewal with what certbot stored at the first issuance (the hook, the account).
    let (ok, out) = certbot(
        dir,
        &server,
        &["renew", "--cert-name", "dns.acme.example", "--force-renewal", "--no-random-sleep-on-renew"],
    );
    assert!(ok, "{out}");
    let renewed = serial(&cert);
    assert_ne!(first, renewed, "live/cert.pem is the renewed certificate");

    // Revocation by the account shows in OCSP on the plain port at once.
    let (ok, out) = certbot(
        dir,
        &server,
        &["revoke", "--cert-path", cert.to_str().unwrap(), "--reason", "superseded", "--no-delete-after-revoke"],
    );
    assert!(ok, "{out}");
    let (root, issuing) = (pem_of(&data, "root"), pem_of(&data, "issuing"));
    let ocsp = ocsp_status(&issuing, &cert, &server.base, &root);
    assert!(ocsp.contains("cert.pem: revoked") && ocsp.contains("superseded"), "{ocsp}");

    // A wrong TXT value fails the challenge with the server's reason.
    std::fs::write(&records, r#"{"_acme-challenge.wrong.acme.example": ["not-the-key-authorization"]}"#).unwrap();
    let (ok, out) = certbot(
        dir,
        &server,
        &[
            "certonly",
            "--manual",
            "--preferred-challenges",
            "dns",
            "--manual-auth-hook",
            "true",
            "-d",
            "wrong.acme.example",
        ],
    );
    assert!(!ok && out.contains("incorrectResponse"), "{out}");
}
