//! Logging: `tracing` to stderr, filtered by `RUST_LOG` (default `info`).
//! The filter can be replaced while running ([`set_filter`], behind the
//! monitoring port's `/debug/logging`).

use std::sync::OnceLock;

use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Registry, fmt, reload};

static FILTER: OnceLock<reload::Handle<EnvFilter, Registry>> = OnceLock::new();

pub fn init_logging() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let (filter, handle) = reload::Layer::new(filter);
    tracing_subscriber::registry()
        .with(filter)
        .with(fmt::layer().with_writer(std::io::stderr).with_ansi(false))
        .init();
    let _ = FILTER.set(handle);
}

/// The filter in force (`RUST_LOG` syntax), if logging is initialised.
pub fn current_filter() -> Option<String> {
    FILTER.get()?.with_current(ToString::to_string).ok()
}

/// Replaces the filter with `directives` (`RUST_LOG` syntax:
/// `info,weft_xds=debug`); returns the filter now in force.
pub fn set_filter(directives: &str) -> Result<String, String> {
    let filter = EnvFilter::try_new(directives)
        .map_err(|err| format!("{directives:?} is not a log filter (RUST_LOG syntax): {err}"))?;
    let handle = FILTER
        .get()
        .ok_or_else(|| "logging is not initialised".to_string())?;
    handle
        .reload(filter)
        .map_err(|err| format!("cannot replace the log filter: {err}"))?;
    Ok(current_filter().unwrap_or_else(|| directives.to_string()))
}
