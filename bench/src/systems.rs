//! The two control planes under test, started the same way against the
//! same apiserver: `weft operator` (the release build next to this binary)
//! and istiod (`pilot-discovery`, built from the Go module proxy by
//! `weft_e2e::istiod`). Each is measured on its plaintext ADS port.

use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Result;
use weft_e2e::istiod::Istiod;
use weft_e2e::{ControlPlane, Process, Weft};

/// Which control plane.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum System {
    Weft,
    Istiod,
}

impl System {
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "weft" => Some(Self::Weft),
            "istiod" => Some(Self::Istiod),
            _ => None,
        }
    }

    /// Starts the control plane and waits until it has read the world and
    /// serves xDS.
    pub async fn start(self, plane: &ControlPlane, timeout: Duration) -> Result<Running> {
        Ok(match self {
            Self::Weft => Running::Weft(Weft::start_operator(plane.kubeconfig(), timeout).await?),
            Self::Istiod => Running::Istiod(Istiod::start(plane, timeout).await?),
        })
    }
}

impl fmt::Display for System {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Weft => "Weft",
            Self::Istiod => "istiod",
        })
    }
}

/// A running control plane; dropping it stops the process.
#[derive(Debug)]
pub enum Running {
    Weft(Weft),
    Istiod(Istiod),
}

impl Running {
    pub fn xds_addr(&self) -> SocketAddr {
        match self {
            Self::Weft(weft) => weft.xds_addr(),
            Self::Istiod(istiod) => istiod.xds_addr(),
        }
    }

    pub fn process(&self) -> &Process {
        match self {
            Self::Weft(weft) => weft.process(),
            Self::Istiod(istiod) => istiod.process(),
        }
    }
}
