//! `weft-loadgen`: an xDS load generator. N simulated Envoy clients, each on
//! its own gRPC ADS stream (state-of-the-world or delta), each with its own
//! node id and Istio sidecar metadata, subscribing the way Envoy does
//! (wildcard CDS and LDS, then the EDS and RDS names those reference),
//! ACKing what they decode and NACKing what they cannot. A scenario marks a
//! change with a predicate; each client records the time from the change to
//! its first ACK of a state where the predicate holds.
//!
//! It is a plain xDS client: it depends on no Weft crate, so it measures
//! Weft and istiod alike.
//!
//! It is built to run 1,000 clients against a 1,000-service mesh in one
//! process next to the control plane: identical resources are decoded once
//! and shared by every client that holds them (`intern.rs`), the EDS / RDS
//! names a client follows are derived without copying (and the RDS names
//! of a listener once per new listener), and probes can be limited to the
//! type they read. Per client it counts the responses and their encoded
//! bytes per type, and its ACKs, so a benchmark can report bytes per push.
//!
//! ```text
//!   node.rs      who a client says it is (Node, Istio metadata)      pure
//!   state.rs     what a client accepted; EDS/RDS names it follows    pure
//!   intern.rs    decode each distinct resource once, share it
//!   traffic.rs   responses and bytes received, per type              pure
//!   measure.rs   probes, predicates, p50/p99/max                     pure
//!   client.rs    one ADS stream (SotW / delta): subscribe, ACK, NACK
//!   fleet.rs     N clients: start, wait for sync, mark a change
//!   main.rs      the CLI
//! ```

pub mod client;
pub mod fleet;
pub mod intern;
pub mod measure;
pub mod node;
pub mod state;
pub mod traffic;
