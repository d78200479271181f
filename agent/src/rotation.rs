//! The certificate lifecycle: a new key and CSR, the CA's answer checked,
//! published to SDS; again at half the lifetime (with jitter); on failure
//! retried with backoff while the current certificate keeps being served.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::watch;
use tracing::{info, warn};

use crate::bundle::{BundleError, CertBundle};
use crate::ca_client::{CaClient, CaError};
use crate::identity::{CsrError, Identity, generate};
use crate::schedule::{Backoff, renewal_delay};

/// What rotation has done so far (for readiness and tests).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RotationStatus {
    /// Certificates issued since start.
    pub issued: u64,
    /// Failed attempts since start.
    pub failures: u64,
    /// The last failure's kind and text, cleared by a success.
    pub last_error: Option<(&'static str, String)>,
}

/// Why one attempt failed.
#[derive(Debug, thiserror::Error)]
pub enum RotationError {
    #[error(transparent)]
    Csr(#[from] CsrError),
    #[error(transparent)]
    Ca(#[from] CaError),
    #[error("the CA's answer is unusable: {0}")]
    Bundle(#[from] BundleError),
}

impl RotationError {
    pub fn kind(&self) -> &'static str {
        match self {
            RotationError::Csr(err) => err.kind(),
            RotationError::Ca(err) => err.kind(),
            RotationError::Bundle(err) => err.kind(),
        }
    }
}

/// Everything one rotation loop needs.
#[derive(Debug)]
pub struct Rotation {
    pub client: CaClient,
    pub identity: Identity,
    /// Requested validity; zero lets the CA choose.
    pub ttl: Duration,
    pub retry_initial: Duration,
    pub retry_max: Duration,
}

impl Rotation {
    /// One attempt: key, CSR, CA call, checked bundle.
    pub async fn issue(&self) -> Result<CertBundle, RotationError> {
        let made = generate(&self.identity)?;
        let chain = self
            .client
            .create_certificate(&made.csr_pem, self.ttl)
            .await?;
        Ok(CertBundle::from_response(&chain, made.key_pem)?)
    }

    /// Runs forever (abort the task to stop it), publishing each new
    /// certificate to `bundles` and progress to `status`.
    pub async fn run(
        self,
        bundles: watch::Sender<Option<Arc<CertBundle>>>,
        status: watch::Sender<RotationStatus>,
    ) {
        let mut backoff = Backoff::new(self.retry_initial, self.retry_max);
        let spiffe_id = self.identity.spiffe_id();
        loop {
            let delay = match self.issue().await {
                Ok(bundle) => {
                    backoff.reset();
                    let now = SystemTime::now();
                    let delay = renewal_delay(
                        bundle.not_before,
                        bundle.not_after,
                        now,
                        fastrand::f64() * 2.0 - 1.0,
                    );
                    let expires_in = bundle.not_after.duration_since(now).unwrap_or_default();
                    info!(
                        identity = %spiffe_id,
                        expires_in_s = expires_in.as_secs(),
                        expires_at = %unix_seconds(bundle.not_after),
                        renew_in_ms = delay.as_millis() as u64,
                        "certificate issued"
                    );
                    bundles.send_replace(Some(Arc::new(bundle)));
                    status.send_modify(|s| {
                        s.issued += 1;
                        s.last_error = None;
                    });
                    delay
                }
                Err(err) => {
                    let delay = backoff.next_delay(fastrand::f64());
                    let still_valid = bundles
                        .borrow()
                        .as_ref()
                        .is_some_and(|b| b.not_after > SystemTime::now());
                    warn!(
                        identity = %spiffe_id,
                        kind = err.kind(),
                        error = %err,
                        retry_in_ms = delay.as_millis() as u64,
                        serving_valid_certificate = still_valid,
                        "certificate request failed; retrying"
                    );
                    status.send_modify(|s| {
                        s.failures += 1;
                        s.last_error = Some((err.kind(), err.to_string()));
                    });
                    delay
                }
            };
            tokio::time::sleep(delay).await;
        }
    }
}

fn unix_seconds(time: SystemTime) -> u64 {
    time.duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs()
}
