//! The integration tests: one binary, a module per area, one `support` module they share.
//!
//! Every test runs the pipe binary as a child process (its environment passed to that child,
//! never set on this process), against its own moto server (`ceph::`: its own bucket on the one
//! Ceph RGW of this binary), so the areas share this process safely. Run one area with
//! `cargo test --test integration <area>::`, e.g. `sync::`.

mod support;

mod buckets;
mod ceph;
mod foundation;
mod iam;
mod integrity;
mod invalidate;
mod listing;
mod migration;
mod network;
mod pace;
mod releases;
mod reliability;
mod robustness;
mod rules;
mod sync;
mod untrusted;
mod versions;
