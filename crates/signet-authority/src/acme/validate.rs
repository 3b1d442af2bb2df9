//! Challenge validation: http-01 (RFC 8555 §8.3) fetches the key authorization from the name
//! on the configured port; dns-01 (§8.4) asks the configured DNS server for the TXT record at
//! `_acme-challenge.<name>` with a small UDP client (one question, TXT answers only; the
//! resolver does the recursion).

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use http_body_util::{BodyExt, Empty, Limited};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use signet_pki::subject::DnsName;
use signet_ra::acme::{AcmeProblem, ChallengeKind, ChallengeToken, ProblemKind, Validation, dns01_txt};

use super::AcmeSettings;

/// How long one validation may take, connection and answer together.
const TIMEOUT: Duration = Duration::from_secs(10);

/// The longest http-01 answer read: a key authorization is under 100 bytes.
const MAX_BODY: usize = 1024;

/// Validates the processing challenge of `v`.
pub async fn validate(settings: &AcmeSettings, v: &Validation) -> Result<(), AcmeProblem> {
    let work = async {
        match v.kind() {
            ChallengeKind::Http01 => http01(settings, v.name(), v.token(), v.key_authorization()).await,
            ChallengeKind::Dns01 => dns01(settings, v.name(), v.key_authorization()).await,
        }
    };
    tokio::time::timeout(TIMEOUT, work).await.unwrap_or_else(|_| {
        Err(AcmeProblem::new(ProblemKind::Connection, format!("validating {} timed out", v.name())))
    })
}

async fn resolve(settings: &AcmeSettings, name: &DnsName) -> Result<SocketAddr, AcmeProblem> {
    if let Some(ip) = settings.resolve.get(name.as_str()) {
        return Ok(SocketAddr::new(*ip, settings.http01_port));
    }
    tokio::net::lookup_host((name.as_str(), settings.http01_port))
        .await
        .ok()
        .and_then(|mut addrs| addrs.next())
        .ok_or_else(|| AcmeProblem::new(ProblemKind::Dns, format!("no address found for {name}")))
}

async fn http01(
    settings: &AcmeSettings,
    name: &DnsName,
    token: &ChallengeToken,
    expected: &str,
) -> Result<(), AcmeProblem> {
    let addr = resolve(settings, name).await?;
    let path = format!("/.well-known/acme-challenge/{}", token.as_str());
    let connection =
        |e: &dyn std::fmt::Display| AcmeProblem::new(ProblemKind::Connection, format!("http://{name}{path}: {e}"));
    let stream = tokio::net::TcpStream::connect(addr).await.map_err(|e| connection(&e))?;
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.map_err(|e| connection(&e))?;
    tokio::spawn(conn);
    let host = if settings.http01_port == 80 { name.to_string() } else { format!("{name}:{}", settings.http01_port) };
    let request = hyper::Request::get(path.as_str())
        .header(hyper::header::HOST, host)
        .header(hyper::header::USER_AGENT, "signet-acme-validator")
        .body(Empty::<Bytes>::new())
        .map_err(|e| connection(&e))?;
    let response = sender.send_request(request).await.map_err(|e| connection(&e))?;
    if response.status() != hyper::StatusCode::OK {
        // Redirects are not followed: the answer must come from the name itself.
        return Err(AcmeProblem::new(
            ProblemKind::Unauthorized,
            format!("http://{name}{path} answered {}", response.status()),
        ));
    }
    let body = Limited::new(response.into_body(), MAX_BODY).collect().await.map_err(|e| connection(&*e))?.to_bytes();
    // RFC 8555 §8.3: the client may add whitespace around the key authorization.
    if String::from_utf8_lossy(&body).trim() == expected {
        Ok(())
    } else {
        Err(AcmeProblem::new(
            ProblemKind::IncorrectResponse,
            format!("http://{name}{path} did not return the key authorization"),
        ))
    }
}

/// The first `nameserver` of resolv.conf, port 53: the machine's own resolver.
fn system_resolver() -> Option<SocketAddr> {
    let conf = std::fs::read_to_string("/etc/resolv.conf").ok()?;
    conf.lines().find_map(|l| {
        let ip = l.trim().strip_prefix("nameserver")?.trim();
        // A link-local IPv6 resolver carries a zone (`fe80::1%eth0`) that IpAddr cannot hold.
        ip.parse::<IpAddr>().ok().map(|ip| SocketAddr::new(ip, 53))
    })
}

async fn dns01(settings: &AcmeSettings, name: &DnsName, key_authorization: &str) -> Result<(), AcmeProblem> {
    let server = settings
        .dns_resolver
        .or_else(system_resolver)
        .ok_or_else(|| AcmeProblem::new(ProblemKind::ServerInternal, "no DNS resolver is configured"))?;
    let record = format!("_acme-challenge.{name}");
    let dns = |detail: String| AcmeProblem::new(ProblemKind::Dns, detail);
    let answers = query_txt(server, &record).await.map_err(|e| dns(format!("TXT {record}: {e}")))?;
    let expected = dns01_txt(key_authorization);
    if answers.iter().any(|a| a == &expected) {
        Ok(())
    } else if answers.is_empty() {
        Err(dns(format!("no TXT record at {record}")))
    } else {
        Err(AcmeProblem::new(
            ProblemKind::IncorrectResponse,
            format!("no TXT record at {record} matches the key authorization"),
        ))
    }
}

const TYPE_TXT: u16 = 16;
const CLASS_IN: u16 = 1;

/// A DNS query (RFC 1035 §4.1) for the TXT records of `name`, recursion desired.
fn txt_query(id: u16, name: &str) -> Result<Vec<u8>, String> {
    let mut q = Vec::with_capacity(18 + name.len());
    q.extend_from_slice(&id.to_be_bytes());
    q.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
    for label in name.trim_end_matches('.').split('.') {
        let len = u8::try_from(label.len()).ok().filter(|l| (1..64).contains(l)).ok_or("bad label")?;
        q.push(len);
        q.extend_from_slice(label.as_bytes());
    }
    q.push(0);
    q.extend_from_slice(&TYPE_TXT.to_be_bytes());
    q.extend_from_slice(&CLASS_IN.to_be_bytes());
    Ok(q)
}

struct Reader<'a> {
    msg: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], String> {
        let out = self.msg.get(self.at..self.at + n).ok_or("truncated DNS message")?;
        self.at += n;
        Ok(out)
    }
    fn u16(&mut self) -> Result<u16, String> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }
    /// Skips a possibly compressed name (RFC 1035 §4.1.4).
    fn skip_name(&mut self) -> Result<(), String> {
        loop {
            let len = self.take(1)?[0];
            match len {
                0 => return Ok(()),
                l if l & 0xc0 == 0xc0 => {
                    self.take(1)?;
                    return Ok(());
                }
                l => {
                    self.take(usize::from(l))?;
                }
            }
        }
    }
}

/// The TXT strings of a response to query `id`: each record's character-strings joined
/// (RFC 8555 §8.4 values fit one string, but long records are split). NXDOMAIN is no records.
fn txt_answers(id: u16, msg: &[u8]) -> Result<Vec<String>, String> {
    let mut r = Reader { msg, at: 0 };
    if r.u16()? != id {
        return Err("the answer is for another query".into());
    }
    let flags = r.u16()?;
    if flags & 0x8000 == 0 {
        return Err("not a DNS response".into());
    }
    if flags & 0x0200 != 0 {
        return Err("the answer was truncated (TXT answers over 512 bytes are not supported)".into());
    }
    match flags & 0x000f {
        0 => {}
        3 => return Ok(Vec::new()),
        rcode => return Err(format!("the DNS server answered with error code {rcode}")),
    }
    let (questions, answers) = (r.u16()?, r.u16()?);
    r.take(4)?;
    for _ in 0..questions {
        r.skip_name()?;
        r.take(4)?;
    }
    let mut out = Vec::new();
    for _ in 0..answers {
        r.skip_name()?;
        let (kind, class) = (r.u16()?, r.u16()?);
        r.take(4)?;
        let len = usize::from(r.u16()?);
        let data = r.take(len)?;
        if kind != TYPE_TXT || class != CLASS_IN {
            continue;
        }
        let mut text = Vec::new();
        let mut d = Reader { msg: data, at: 0 };
        while d.at < data.len() {
            let n = usize::from(d.take(1)?[0]);
            text.extend_from_slice(d.take(n)?);
        }
        out.push(String::from_utf8_lossy(&text).into_owned());
    }
    Ok(out)
}

async fn query_txt(server: SocketAddr, name: &str) -> Result<Vec<String>, String> {
    let local: SocketAddr = if server.is_ipv4() { ([0, 0, 0, 0], 0).into() } else { ([0u16; 8], 0).into() };
    let socket = tokio::net::UdpSocket::bind(local).await.map_err(|e| e.to_string())?;
    socket.connect(server).await.map_err(|e| format!("{server}: {e}"))?;
    let mut id = [0u8; 2];
    aws_lc_rs::rand::fill(&mut id).map_err(|_| "random generator failed")?;
    let id = u16::from_be_bytes(id);
    let query = txt_query(id, name)?;
    let mut buf = vec![0u8; 4096];
    // UDP may drop a datagram: ask three times, two seconds apart.
    for _ in 0..3 {
        socket.send(&query).await.map_err(|e| format!("{server}: {e}"))?;
        if let Ok(received) = tokio::time::timeout(Duration::from_secs(2), socket.recv(&mut buf)).await {
            let n = received.map_err(|e| format!("{server}: {e}"))?;
            return txt_answers(id, &buf[..n]);
        }
    }
    Err(format!("{server} did not answer"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A response as BIND writes it: the question, then two TXT records whose owner name is a
    /// compression pointer to the question, the second split into two character-strings.
    fn response(id: u16, rcode: u8) -> Vec<u8> {
        let mut q = txt_query(id, "_acme-challenge.d.acme.example").unwrap();
        q[2] = 0x81;
        q[3] = 0x80 | rcode;
        q[7] = 2;
        for strings in [&["abc"][..], &["de", "f"]] {
            q.extend_from_slice(&[0xc0, 12, 0, 16, 0, 1, 0, 0, 0, 60]);
            let data: Vec<u8> = strings.iter().flat_map(|s| [&[s.len() as u8][..], s.as_bytes()].concat()).collect();
            q.extend_from_slice(&(data.len() as u16).to_be_bytes());
            q.extend_from_slice(&data);
        }
        q
    }

    #[test]
    fn queries_and_answers() {
        let q = txt_query(0x1234, "_acme-challenge.d.acme.example").unwrap();
        assert_eq!(&q[..4], &[0x12, 0x34, 0x01, 0x00]);
        assert_eq!(&q[12..30], b"\x0f_acme-challenge\x01d");
        assert_eq!(txt_answers(0x1234, &response(0x1234, 0)).unwrap(), ["abc", "def"]);
        assert!(txt_answers(0x1235, &response(0x1234, 0)).is_err(), "another query's answer");
        assert_eq!(txt_answers(7, &response(7, 3)).unwrap(), Vec::<String>::new(), "NXDOMAIN");
        assert!(txt_answers(7, &response(7, 2)).unwrap_err().contains("error code 2"), "SERVFAIL");
        let full = response(9, 0);
        assert!(txt_answers(9, &full[..full.len() - 2]).is_err(), "cut short");
        assert!(txt_query(1, &format!("{}.example", "a".repeat(64))).is_err());
    }
}
