//! Writes the CRDs of weft-crds as YAML, one file per CRD:
//!
//! ```text
//! cargo run -p weft-crds --bin crdgen [DIR]   # DIR defaults to charts/weft/crds
//! ```
//!
//! Files are named `<group>_<plural>.yaml`. Other `*.yaml` files in DIR
//! whose names start with `networking.istio.io_`, `security.istio.io_`,
//! `telemetry.istio.io_` or `policy.weft.dev_`
//! are removed, so the
//! directory matches what `crds_up_to_date` expects.

use std::path::PathBuf;
use std::process::ExitCode;

fn run() -> Result<(), String> {
    let dir = PathBuf::from(
        std::env::args()
            .nth(1)
            .unwrap_or_else(|| "charts/weft/crds".to_string()),
    );
    std::fs::create_dir_all(&dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;

    let crds = weft_crds::crds();
    let wanted: Vec<String> = crds.iter().map(weft_crds::crd_file_name).collect();
    let entries = std::fs::read_dir(&dir).map_err(|e| format!("reading {}: {e}", dir.display()))?;
    for entry in entries {
        let path = entry
            .map_err(|e| format!("reading {}: {e}", dir.display()))?
            .path();
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        let ours = name.starts_with("networking.istio.io_")
            || name.starts_with("security.istio.io_")
            || name.starts_with("telemetry.istio.io_")
            || name.starts_with("policy.weft.dev_");
        if ours && name.ends_with(".yaml") && !wanted.iter().any(|w| w == name) {
            std::fs::remove_file(&path).map_err(|e| format!("removing {}: {e}", path.display()))?;
            println!("removed {}", path.display());
        }
    }

    for (crd, name) in crds.iter().zip(&wanted) {
        let text = weft_crds::render_crd_yaml(crd).map_err(|e| e.to_string())?;
        let path = dir.join(name);
        std::fs::write(&path, text).map_err(|e| format!("writing {}: {e}", path.display()))?;
        println!("wrote {}", path.display());
    }
    Ok(())
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("crdgen: {err}");
            ExitCode::FAILURE
        }
    }
}
