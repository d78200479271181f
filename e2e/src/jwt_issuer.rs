//! A JSON Web Token issuer the tests own: OpenID discovery
//! (`/.well-known/openid-configuration`) and its key set (`/keys`) over
//! HTTPS with a CA of its own ([`TestPki`]), and tokens signed ES256 with
//! its current key, or RS256 with a fixed RSA key
//! (`e2e/fixtures/jwt-rs256-key.pem`, a test key and nothing else) that
//! the set always holds too (ring).
//!
//! - [`JwtIssuer::start`] serves on `127.0.0.1` (kernel port);
//!   [`JwtIssuer::url`] is `https://localhost:PORT`, the issuer (`iss`) and
//!   where discovery is; [`JwtIssuer::jwks_uri`] the key set's URL;
//!   [`JwtIssuer::ca_pem_path`] the CA to trust.
//! - [`JwtIssuer::token`] signs claims ES256 (`iss` added unless given),
//!   [`JwtIssuer::token_rs256`] RS256, [`JwtIssuer::jwks`] is the key set
//!   (for `jwks:` inline); [`claims`] builds the
//!   usual ones.
//! - [`JwtIssuer::jwks`] is the key set it publishes, for `jwks:` inline.
//! - [`JwtIssuer::rotate`] replaces the key (the old one leaves the set);
//!   [`JwtIssuer::stop`] / [`JwtIssuer::resume`] take the server down and
//!   bring it back on the same port.
//! - The same is served over plain HTTP on [`JwtIssuer::http_addr`];
//!   [`JwtIssuer::key_requests`] counts the key set requests over each.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, anyhow};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use ring::rand::SystemRandom;
use ring::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair, RSA_PKCS1_SHA256, RsaKeyPair,
    RsaPublicKeyComponents,
};
use rustls::ServerConfig;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;

use crate::tls::{TestPki, certs, key, provider};

/// One signing key and its public JWK.
struct SigningKey {
    kid: String,
    pair: EcdsaKeyPair,
}

impl SigningKey {
    fn generate(kid: &str) -> Result<SigningKey> {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            .map_err(|_| anyhow!("generating a P-256 key"))?;
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng)
            .map_err(|_| anyhow!("reading the P-256 key"))?;
        Ok(SigningKey {
            kid: kid.to_string(),
            pair,
        })
    }

    fn jwk(&self) -> Value {
        // An uncompressed point: 0x04, x, y.
        let point = self.pair.public_key().as_ref();
        json!({
            "kty": "EC", "crv": "P-256", "alg": "ES256", "use": "sig", "kid": self.kid,
            "x": URL_SAFE_NO_PAD.encode(&point[1..33]),
            "y": URL_SAFE_NO_PAD.encode(&point[33..65]),
        })
    }
}

/// The fixed RSA key's kid.
const RSA_KID: &str = "rsa-fixture";

/// The fixed RSA test key.
fn rsa_key() -> Result<RsaKeyPair> {
    let path = crate::tools::workspace_dir().join("e2e/fixtures/jwt-rs256-key.pem");
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let der = pem::parse(text)?;
    RsaKeyPair::from_pkcs8(der.contents()).map_err(|e| anyhow!("reading the RSA key: {e}"))
}

fn rsa_jwk(key: &RsaKeyPair) -> Value {
    let public = RsaPublicKeyComponents::<Vec<u8>>::from(key.public());
    json!({
        "kty": "RSA", "alg": "RS256", "use": "sig", "kid": RSA_KID,
        "n": URL_SAFE_NO_PAD.encode(&public.n),
        "e": URL_SAFE_NO_PAD.encode(&public.e),
    })
}

/// What the server answers from.
struct State {
    url: String,
    key: SigningKey,
    rsa: RsaKeyPair,
    rotations: u32,
}

impl State {
    fn jwks(&self) -> Value {
        json!({ "keys": [self.key.jwk(), rsa_jwk(&self.rsa)] })
    }
}

/// The issuer; see the module docs.
pub struct JwtIssuer {
    pki: TestPki,
    addr: SocketAddr,
    /// The same answers over plain HTTP (for Envoy fetching through a
    /// plain-text mesh cluster).
    http_addr: SocketAddr,
    state: Arc<Mutex<State>>,
    tls: TlsAcceptor,
    /// Key set requests answered: over HTTPS, over HTTP.
    key_requests: Arc<[AtomicUsize; 2]>,
    servers: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for JwtIssuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtIssuer")
            .field("addr", &self.addr)
            .finish()
    }
}

impl JwtIssuer {
    /// Serves on `127.0.0.1`, a port the kernel picks.
    pub async fn start() -> Result<JwtIssuer> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let pki = TestPki::new()?;
        let cert = pki.issue(&["localhost", "127.0.0.1"])?;
        let config = ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(certs(&cert.cert_pem)?, key(&cert.key_pem)?)?;
        let state = Arc::new(Mutex::new(State {
            url: format!("https://localhost:{}", addr.port()),
            key: SigningKey::generate("key-0")?,
            rsa: rsa_key()?,
            rotations: 0,
        }));
        let http = TcpListener::bind("127.0.0.1:0").await?;
        let mut issuer = JwtIssuer {
            pki,
            addr,
            http_addr: http.local_addr()?,
            state,
            tls: TlsAcceptor::from(Arc::new(config)),
            key_requests: Arc::new([AtomicUsize::new(0), AtomicUsize::new(0)]),
            servers: Vec::new(),
        };
        issuer.serve(listener, true);
        issuer.serve(http, false);
        Ok(issuer)
    }

    /// The issuer (`iss`), under which discovery is found.
    pub fn url(&self) -> String {
        format!("https://localhost:{}", self.addr.port())
    }

    /// The key set's URL.
    pub fn jwks_uri(&self) -> String {
        format!("{}/keys", self.url())
    }

    /// Where the same answers are served over plain HTTP.
    pub fn http_addr(&self) -> SocketAddr {
        self.http_addr
    }

    /// Key set requests answered over HTTPS and over plain HTTP.
    pub fn key_requests(&self) -> (usize, usize) {
        (
            self.key_requests[0].load(Ordering::SeqCst),
            self.key_requests[1].load(Ordering::SeqCst),
        )
    }

    /// A RequestAuthentication `reviews-jwt` of app `reviews` in namespace
    /// `default` for this issuer's tokens of audience `reviews`, their `sub`
    /// copied to `x-jwt-sub`; `keys` is a line of the rule saying where the
    /// keys are (`jwks: ...`, `jwksUri: ...`), empty for OpenID discovery.
    pub fn request_authentication(&self, keys: &str) -> String {
        format!(
            "apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: {{name: reviews-jwt, namespace: default}}
spec:
  selector: {{matchLabels: {{app: reviews}}}}
  jwtRules:
  - issuer: {issuer}
    {keys}
    audiences: [reviews]
    outputClaimToHeaders: [{{header: x-jwt-sub, claim: sub}}]
",
            issuer = self.url(),
        )
    }

    /// The CA certificate the server's is signed by (PEM file).
    pub fn ca_pem_path(&self) -> &Path {
        self.pki.ca_path()
    }

    /// The key set the issuer publishes now (JSON), for `jwks:` inline.
    pub fn jwks(&self) -> Result<String> {
        let state = self.state()?;
        Ok(state.jwks().to_string())
    }

    /// `claims` signed ES256 with the current key; `iss` is the issuer's
    /// unless `claims` has one.
    pub fn token(&self, claims: Value) -> Result<String> {
        let state = self.state()?;
        sign(&state.key, &with_issuer(claims, &state.url))
    }

    /// `claims` (`iss` as for [`JwtIssuer::token`]) signed RS256 with the
    /// fixed RSA key.
    pub fn token_rs256(&self, claims: Value) -> Result<String> {
        let state = self.state()?;
        let claims = with_issuer(claims, &state.url);
        let header = json!({"alg": "RS256", "typ": "JWT", "kid": RSA_KID});
        let input = signing_input(&header, &claims);
        let mut signature = vec![0; state.rsa.public().modulus_len()];
        state
            .rsa
            .sign(
                &RSA_PKCS1_SHA256,
                &SystemRandom::new(),
                input.as_bytes(),
                &mut signature,
            )
            .map_err(|_| anyhow!("signing a token RS256"))?;
        Ok(format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature)))
    }

    fn state(&self) -> Result<std::sync::MutexGuard<'_, State>> {
        self.state
            .lock()
            .map_err(|_| anyhow!("issuer state poisoned"))
    }

    /// `claims` signed by a key the issuer never published.
    pub fn forged_token(&self, claims: Value) -> Result<String> {
        let state = self.state()?;
        let forger = SigningKey::generate(&state.key.kid)?;
        sign(&forger, &with_issuer(claims, &state.url))
    }

    /// A new key replaces the current one in the set and for signing.
    pub fn rotate(&self) -> Result<()> {
        let mut state = self
            .state
            .lock()
            .map_err(|_| anyhow!("issuer state poisoned"))?;
        state.rotations += 1;
        state.key = SigningKey::generate(&format!("key-{}", state.rotations))?;
        Ok(())
    }

    /// Stops answering (connections are refused).
    pub fn stop(&mut self) {
        for server in self.servers.drain(..) {
            server.abort();
        }
    }

    /// Answers again, on the same ports.
    pub async fn resume(&mut self) -> Result<()> {
        for (addr, tls) in [(self.addr, true), (self.http_addr, false)] {
            let listener = TcpListener::bind(addr)
                .await
                .with_context(|| format!("binding the issuer again on {addr}"))?;
            self.serve(listener, tls);
        }
        Ok(())
    }

    fn serve(&mut self, listener: TcpListener, tls: bool) {
        let state = self.state.clone();
        let acceptor = tls.then(|| self.tls.clone());
        let counters = self.key_requests.clone();
        // Connections live in the server task's JoinSet, so that stopping
        // it closes the kept-alive ones too.
        self.servers.push(tokio::spawn(async move {
            let mut connections = tokio::task::JoinSet::new();
            while let Ok((stream, _)) = listener.accept().await {
                while connections.try_join_next().is_some() {}
                let state = state.clone();
                let acceptor = acceptor.clone();
                let counters = counters.clone();
                connections.spawn(async move {
                    let service = service_fn(move |request: Request<Incoming>| {
                        if request.uri().path() == "/keys" {
                            counters[usize::from(!tls)].fetch_add(1, Ordering::SeqCst);
                        }
                        let response = answer(&state, request.uri().path());
                        async move { Ok::<_, Infallible>(response) }
                    });
                    let http = hyper::server::conn::http1::Builder::new();
                    let _ = match acceptor {
                        Some(acceptor) => match acceptor.accept(stream).await {
                            Ok(stream) => {
                                http.serve_connection(TokioIo::new(stream), service).await
                            }
                            Err(_) => return,
                        },
                        None => http.serve_connection(TokioIo::new(stream), service).await,
                    };
                });
            }
        }));
    }
}

impl Drop for JwtIssuer {
    fn drop(&mut self) {
        self.stop();
    }
}

fn answer(state: &Mutex<State>, path: &str) -> Response<Full<Bytes>> {
    let body = match state.lock() {
        Ok(state) => match path {
            "/.well-known/openid-configuration" => Some(json!({
                "issuer": state.url,
                "jwks_uri": format!("{}/keys", state.url),
            })),
            "/keys" => Some(state.jwks()),
            _ => None,
        },
        Err(_) => None,
    };
    let mut response = Response::new(Full::new(Bytes::from(
        body.map(|b| b.to_string()).unwrap_or_default(),
    )));
    if !matches!(path, "/.well-known/openid-configuration" | "/keys") {
        *response.status_mut() = StatusCode::NOT_FOUND;
    }
    response
}

fn sign(key: &SigningKey, claims: &Value) -> Result<String> {
    let header = json!({"alg": "ES256", "typ": "JWT", "kid": key.kid});
    let signing_input = signing_input(&header, claims);
    let signature = key
        .pair
        .sign(&SystemRandom::new(), signing_input.as_bytes())
        .map_err(|_| anyhow!("signing a token"))?;
    Ok(format!(
        "{signing_input}.{}",
        URL_SAFE_NO_PAD.encode(signature.as_ref())
    ))
}

/// `base64url(header).base64url(claims)`.
fn signing_input(header: &Value, claims: &Value) -> String {
    format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    )
}

/// `claims` with `iss` set to `url` unless it has one.
fn with_issuer(mut claims: Value, url: &str) -> Value {
    if claims.get("iss").is_none() {
        claims["iss"] = json!(url);
    }
    claims
}

/// `sub`, `aud`, and `exp` `expires_in_secs` from now (negative: already
/// expired), plus `extra`'s fields.
pub fn claims(sub: &str, aud: &str, expires_in_secs: i64, extra: Value) -> Value {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default();
    let mut claims = json!({"sub": sub, "aud": aud, "iat": now, "exp": now + expires_in_secs});
    if let (Some(all), Some(more)) = (claims.as_object_mut(), extra.as_object()) {
        all.extend(more.clone());
    }
    claims
}
