//! What `weft proxy-status` and `weft proxy-config` share: where the
//! control plane's debug endpoints are, how to authenticate to them, and a
//! GET that returns JSON or says plainly why not.

use std::path::PathBuf;

use anyhow::{Context, anyhow, bail};
use clap::Args;
use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;

#[derive(Debug, Args)]
pub struct ControlPlaneArgs {
    /// The control plane's monitoring server (`weft standalone|operator
    /// --monitoring-address`; on a cluster, `kubectl port-forward -n
    /// weft-system deploy/weft 15014` first).
    #[arg(
        long,
        value_name = "URL",
        default_value = "http://127.0.0.1:15014",
        env = "WEFT_CONTROL_PLANE"
    )]
    pub control_plane: String,
    /// A file holding a service-account token of the control plane's
    /// namespace, sent as `Authorization: Bearer` (needed unless the
    /// control plane is reached over loopback).
    #[arg(long, value_name = "FILE")]
    pub token_file: Option<PathBuf>,
}

impl ControlPlaneArgs {
    /// `GET path` on the control plane, as JSON.
    pub async fn get_json(&self, path: &str) -> anyhow::Result<Value> {
        let url = format!("{}{path}", self.control_plane.trim_end_matches('/'));
        let mut request = hyper::Request::get(&url);
        if let Some(file) = &self.token_file {
            let token = std::fs::read_to_string(file)
                .with_context(|| format!("cannot read the token file {}", file.display()))?;
            request = request.header("authorization", format!("Bearer {}", token.trim()));
        }
        let request = request
            .body(Empty::<Bytes>::new())
            .with_context(|| format!("{url} is not a URL"))?;
        let client = Client::builder(TokioExecutor::new()).build_http();
        let response = client.request(request).await.map_err(|err| {
            anyhow!(
                "cannot reach the control plane at {}: {err} (is `weft standalone` or `weft \
                 operator` running there? set --control-plane)",
                self.control_plane
            )
        })?;
        let status = response.status();
        let body = response
            .into_body()
            .collect()
            .await
            .with_context(|| format!("reading the answer of {url}"))?
            .to_bytes();
        let text = String::from_utf8_lossy(&body);
        if !status.is_success() {
            bail!("{url}: {status}: {}", text.trim());
        }
        serde_json::from_str(&text).with_context(|| format!("{url} did not answer JSON"))
    }
}

/// How a command prints what it found.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Output {
    #[default]
    Table,
    Json,
    Yaml,
}

/// `value` as JSON or YAML (`None` for tables: the caller renders them).
pub fn render_data(value: &Value, output: Output) -> anyhow::Result<Option<String>> {
    Ok(match output {
        Output::Table => None,
        Output::Json => Some(format!("{value:#}\n")),
        Output::Yaml => Some(serde_yaml::to_string(value).context("printing YAML")?),
    })
}

/// Left-aligned columns separated by three spaces, as `kubectl get`.
pub fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.len()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if let Some(width) = widths.get_mut(i) {
                *width = (*width).max(cell.chars().count());
            }
        }
    }
    let line = |cells: Vec<&str>| {
        let last = cells.len().saturating_sub(1);
        let mut out = String::new();
        for (i, cell) in cells.into_iter().enumerate() {
            out.push_str(cell);
            if i < last {
                let pad = widths[i] - cell.chars().count() + 3;
                out.push_str(&" ".repeat(pad));
            }
        }
        out.trim_end().to_string() + "\n"
    };
    let mut out = line(headers.to_vec());
    for row in rows {
        out.push_str(&line(row.iter().map(String::as_str).collect()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align_their_columns() {
        let out = table(
            &["NAME", "STATE"],
            &[
                vec!["a".into(), "SYNCED".into()],
                vec!["longer-name".into(), "STALE".into()],
            ],
        );
        assert_eq!(
            out,
            "NAME          STATE\na             SYNCED\nlonger-name   STALE\n"
        );
    }
}
