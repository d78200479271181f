#!/usr/bin/env bash
# Refreshes proto/ from an envoy-types source directory: copies, byte for
# byte, the import closure of the packages listed in proto_set.rs (ROOTS),
# widened to whole packages. protox computes the closure
# (examples/proto_closure.rs); change ROOTS there, then rerun this.
#
#   pilot/envoy-api/vendor-protos.sh ~/.cargo/registry/src/index.crates.io-*/envoy-types-0.7.7
#
# The example links this crate, so it builds against the protos vendored now;
# they only need to compile, not to be the new set. proto/README.md is kept.
set -euo pipefail

src=${1:?usage: $0 <envoy-types source dir, holding proto/data-plane-api etc.>}
here=$(cd "$(dirname "$0")" && pwd)
from=$(cd "$src/proto" && pwd)
[[ -d $from/data-plane-api ]] || { echo "$from has no data-plane-api/" >&2; exit 1; }

list=$(mktemp)
trap 'rm -f "$list"' EXIT
cargo run --quiet --manifest-path "$here/Cargo.toml" --example proto_closure -- "$from" >"$list"
[[ -s $list ]] || { echo "empty closure" >&2; exit 1; }

find "$here/proto" -mindepth 1 -maxdepth 1 ! -name README.md -exec rm -rf {} +
(cd "$from" && xargs cp --parents -t "$here/proto" <"$list")
echo "vendored $(wc -l <"$list") files ($(cd "$here/proto" && xargs cat <"$list" | wc -c) bytes) from $from"
