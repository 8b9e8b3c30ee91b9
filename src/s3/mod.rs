//! The one door to the bucket: clients (regions, retries, request extras), the listing, one
//! error type, and the scoped writer through which every put, copy and delete passes.
//!
//! The rule for writes lives in [`scope`]: the pipe writes only below the deployed prefix
//! (outside its state) and, of the forms it writes, below its state prefix. [`writer::Writer`]
//! is the only code that builds a writing request, and checks every key against the rule.

pub(crate) mod client;
pub(crate) mod delete;
pub(crate) mod error;
pub(crate) mod list;
pub(crate) mod pace;
pub(crate) mod request_extras;
pub(crate) mod scope;
pub(crate) mod writer;

pub(crate) use error::{Op, S3Error};
pub(crate) use list::{AllVersions, ListMode, RemoteObject, Versioning};
pub(crate) use scope::{Area, OutOfScope, Scope};
pub(crate) use writer::{CopyFrom, Writer};
