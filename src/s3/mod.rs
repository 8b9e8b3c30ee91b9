//! The one door to the bucket: clients (regions, retries, request extras), the listing, one
//! error type, and the scoped writer through which every put, copy and delete passes.
//!
//! The rule for writes lives in [`scope`]: the pipe writes only below the deployed prefix
//! (outside its state) and, of the forms it writes, below its state prefix. [`writer::Writer`]
//! is the only code that builds a writing request, and checks every key against the rule.

pub mod client;
pub mod delete;
pub mod error;
pub mod list;
pub mod request_extras;
pub mod scope;
pub mod writer;

pub use error::{Op, S3Error};
pub use list::{AllVersions, ListMode, Listed, RemoteObject, Versioning};
pub use scope::{Area, OutOfScope, Scope};
pub use writer::{CopyFrom, Writer};
