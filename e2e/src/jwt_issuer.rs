//! A JSON Web Token issuer the tests own: OpenID discovery
//! (`/.well-known/openid-configuration`) and its key set (`/keys`) over
//! HTTPS with a CA of its own ([`TestPki`]), and tokens signed ES256 with
//! its current key (ring).
//!
//! - [`JwtIssuer::start`] serves on `127.0.0.1` (kernel port);
//!   [`JwtIssuer::url`] is `https://localhost:PORT`, the issuer (`iss`) and
//!   where discovery is; [`JwtIssuer::jwks_uri`] the key set's URL;
//!   [`JwtIssuer::ca_pem_path`] the CA to trust.
//! - [`JwtIssuer::token`] signs claims (`iss` added unless given); [`claims`] builds the
//!   usual ones.
//! - [`JwtIssuer::rotate`] replaces the key (the old one leaves the set);
//!   [`JwtIssuer::stop`] / [`JwtIssuer::resume`] take the server down and
//!   bring it back on the same port.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::Path;
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
use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
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

/// What the server answers from.
struct State {
    url: String,
    key: SigningKey,
    rotations: u32,
}

/// The issuer; see the module docs.
pub struct JwtIssuer {
    pki: TestPki,
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
    tls: TlsAcceptor,
    server: Option<JoinHandle<()>>,
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
            rotations: 0,
        }));
        let mut issuer = JwtIssuer {
            pki,
            addr,
            state,
            tls: TlsAcceptor::from(Arc::new(config)),
            server: None,
        };
        issuer.serve(listener);
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

    /// The CA certificate the server's is signed by (PEM file).
    pub fn ca_pem_path(&self) -> &Path {
        self.pki.ca_path()
    }

    /// `claims` (plus `iss`) signed ES256 with the current key.
    pub fn token(&self, claims: Value) -> Result<String> {
        let state = self
            .state
            .lock()
            .map_err(|_| anyhow!("issuer state poisoned"))?;
        let mut claims = claims;
        claims["iss"] = json!(state.url);
        sign(&state.key, &claims)
    }

    /// `claims` signed by a key the issuer never published.
    pub fn forged_token(&self, claims: Value) -> Result<String> {
        let mut claims = claims;
        claims["iss"] = json!(self.url());
        let kid = self
            .state
            .lock()
            .map_err(|_| anyhow!("issuer state poisoned"))?
            .key
            .kid
            .clone();
        sign(&SigningKey::generate(&kid)?, &claims)
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
        if let Some(server) = self.server.take() {
            server.abort();
        }
    }

    /// Answers again, on the same port.
    pub async fn resume(&mut self) -> Result<()> {
        let listener = TcpListener::bind(self.addr)
            .await
            .with_context(|| format!("binding the issuer again on {}", self.addr))?;
        self.serve(listener);
        Ok(())
    }

    fn serve(&mut self, listener: TcpListener) {
        let state = self.state.clone();
        let tls = self.tls.clone();
        self.server = Some(tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let state = state.clone();
                let tls = tls.clone();
                tokio::spawn(async move {
                    let Ok(stream) = tls.accept(stream).await else {
                        return;
                    };
                    let service = service_fn(move |request: Request<Incoming>| {
                        let response = answer(&state, request.uri().path());
                        async move { Ok::<_, Infallible>(response) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
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
            "/keys" => Some(json!({ "keys": [state.key.jwk()] })),
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
    let signing_input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let signature = key
        .pair
        .sign(&SystemRandom::new(), signing_input.as_bytes())
        .map_err(|_| anyhow!("signing a token"))?;
    Ok(format!(
        "{signing_input}.{}",
        URL_SAFE_NO_PAD.encode(signature.as_ref())
    ))
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
