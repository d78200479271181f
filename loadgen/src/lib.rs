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
//! type they read; at most 32 clients connect at a time (a thousand at
//! once overflow the server's accept backlog). Per client it counts the
//! responses and their encoded bytes per type, and its ACKs, so a benchmark
//! can report bytes per push (`Fleet::received` before and after, subtracted).
//!
//! What a client still holds on its own: its name -> resource maps (about
//! 8,000 names at 1,000 services) and its subscription, and tonic's receive
//! buffer, which keeps the capacity of the largest response; together about
//! 2.4 MB per client, so 1,000 clients take about 2.4 GB.
//!
//! ```text
//!   node.rs      who a client says it is (Node, Istio metadata)      pure
//!   state.rs     what a client accepted; EDS/RDS names it follows    pure
//!   intern.rs    decode each distinct resource once, share it
//!   traffic.rs   responses and bytes received, per type              pure
//!   measure.rs   probes, predicates, p50/p99/max                     pure
//!   client.rs    one ADS stream (SotW / delta): subscribe, ACK, NACK
//!   fleet.rs     N clients: start, wait for sync, mark a change, totals
//!   main.rs      the CLI (usage.rs: its own RSS and CPU time)
//! ```

pub mod client;
pub mod fleet;
pub mod intern;
pub mod measure;
pub mod node;
pub mod state;
pub mod traffic;
