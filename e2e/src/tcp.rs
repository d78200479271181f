//! TCP echo servers and clients, for TCP routes.
//!
//! - [`TcpEcho::start`]`(identity, ip)`: a server on `ip` (kernel port)
//!   that first writes `<identity>\n`, then echoes every byte it reads, so
//!   a client learns which server it reached and that bytes flow both ways.
//! - [`tcp_exchange`]`(addr, payload)`: connects, sends `payload`, and
//!   reads until it has the greeting line and the echoed payload; returns
//!   `(identity, echoed)`.
//! - [`tls_hello_exchange`]`(addr, sni)`: the same with a real TLS
//!   ClientHello naming `sni` as the payload, for what routes by SNI
//!   without terminating TLS; returns the identity.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{JoinHandle, JoinSet};

/// How long one exchange may take.
pub const EXCHANGE_TIMEOUT: Duration = Duration::from_secs(10);

/// A running TCP echo server; stops when dropped.
#[derive(Debug)]
pub struct TcpEcho {
    identity: String,
    addr: SocketAddr,
    connections: Arc<AtomicU64>,
    server: JoinHandle<()>,
}

impl TcpEcho {
    /// Starts on `ip` with a kernel-chosen port.
    pub async fn start(identity: &str, ip: IpAddr) -> Result<Self> {
        let listener = TcpListener::bind(SocketAddr::new(ip, 0))
            .await
            .with_context(|| format!("binding TCP echo {identity} on {ip}"))?;
        let addr = listener.local_addr()?;
        let connections = Arc::new(AtomicU64::new(0));
        let server = tokio::spawn(serve(listener, identity.to_string(), connections.clone()));
        Ok(Self {
            identity: identity.to_string(),
            addr,
            connections,
            server,
        })
    }

    pub fn identity(&self) -> &str {
        &self.identity
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn ip(&self) -> IpAddr {
        self.addr.ip()
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> u64 {
        self.connections.load(Ordering::SeqCst)
    }
}

impl Drop for TcpEcho {
    fn drop(&mut self) {
        self.server.abort();
    }
}

async fn serve(listener: TcpListener, identity: String, connections: Arc<AtomicU64>) {
    let mut tasks = JoinSet::new();
    loop {
        let mut stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(_) => continue,
            },
            Some(_) = tasks.join_next(), if !tasks.is_empty() => continue,
        };
        connections.fetch_add(1, Ordering::SeqCst);
        let greeting = format!("{identity}\n");
        tasks.spawn(async move {
            if stream.write_all(greeting.as_bytes()).await.is_err() {
                return;
            }
            let mut buf = [0u8; 4096];
            loop {
                match stream.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => {
                        if stream.write_all(&buf[..n]).await.is_err() {
                            return;
                        }
                    }
                }
            }
        });
    }
}

/// Connects to `addr`, sends `payload`, and returns the server's identity
/// and the bytes echoed back (as text).
pub async fn tcp_exchange(addr: SocketAddr, payload: &str) -> Result<(String, String)> {
    let (identity, echoed) = exchange(addr, payload.as_bytes()).await?;
    Ok((identity, String::from_utf8_lossy(&echoed).into_owned()))
}

/// Connects to `addr`, sends the ClientHello a TLS client for `sni` sends
/// first (from rustls), and returns the server's identity once the hello
/// came back whole.
pub async fn tls_hello_exchange(addr: SocketAddr, sni: &str) -> Result<String> {
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_root_certificates(rustls::RootCertStore::empty())
    .with_no_client_auth();
    let name = rustls::pki_types::ServerName::try_from(sni.to_string())?;
    let mut client = rustls::ClientConnection::new(Arc::new(config), name)?;
    let mut hello = Vec::new();
    client.write_tls(&mut hello)?;
    let (identity, echoed) = exchange(addr, &hello).await?;
    if echoed[..hello.len()] != hello[..] {
        bail!("{addr} echoed other bytes than the ClientHello");
    }
    Ok(identity)
}

async fn exchange(addr: SocketAddr, payload: &[u8]) -> Result<(String, Vec<u8>)> {
    tokio::time::timeout(EXCHANGE_TIMEOUT, exchange_once(addr, payload))
        .await
        .map_err(|_| anyhow!("TCP exchange with {addr} timed out after {EXCHANGE_TIMEOUT:?}"))?
        .with_context(|| format!("TCP exchange with {addr}"))
}

async fn exchange_once(addr: SocketAddr, payload: &[u8]) -> Result<(String, Vec<u8>)> {
    let mut stream = TcpStream::connect(addr).await?;
    stream.write_all(payload).await?;
    let mut received = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        if let Some(newline) = received.iter().position(|&b| b == b'\n') {
            let echoed = &received[newline + 1..];
            if echoed.len() >= payload.len() {
                let identity = String::from_utf8_lossy(&received[..newline]).into_owned();
                return Ok((identity, echoed.to_vec()));
            }
        }
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            bail!(
                "the connection closed after {} bytes: {:?}",
                received.len(),
                String::from_utf8_lossy(&received)
            );
        }
        received.extend_from_slice(&buf[..n]);
    }
}
