//! Deleting site keys in batches, through the scoped writer, with each failure named.

use super::error::{Op, explain};
use super::scope::Area;
use super::writer::Writer;
use crate::output::Output;

/// Delete one batch (at most [`super::writer::DELETE_BATCH`] keys relative to `prefix`) with DeleteObjects.
/// Returns the keys deleted, the failures, and whether the whole request failed (then stop).
pub(crate) async fn batch(
    writer: &Writer,
    prefix: &str,
    batch: &[String],
    verbose: bool,
    out: &Output,
) -> (Vec<String>, Vec<(Option<String>, String)>, bool) {
    let bucket = writer.bucket();
    let url = |rel: &str| format!("s3://{bucket}/{prefix}{rel}");
    let keys: Vec<String> = batch.iter().map(|rel| format!("{prefix}{rel}")).collect();
    let req = match writer.delete(Area::Site, &keys) {
        Ok(Ok(req)) => req,
        Ok(Err(msg)) => {
            // Every key of the batch stays, and is reported as not deleted.
            let failures = batch
                .iter()
                .map(|rel| (Some(rel.clone()), msg.clone()))
                .collect();
            return (Vec::new(), failures, true);
        }
        Err(refused) => {
            let msg = refused.to_string();
            out.error_line(format!("delete refused: {msg}"));
            let failures = batch
                .iter()
                .map(|rel| (Some(rel.clone()), msg.clone()))
                .collect();
            return (Vec::new(), failures, true);
        }
    };
    let res = req.send().await;
    match res {
        Ok(resp) => {
            let mut failures = Vec::new();
            let failed: std::collections::HashSet<&str> =
                resp.errors().iter().filter_map(|e| e.key()).collect();
            for err in resp.errors() {
                let key = err.key().unwrap_or("?");
                let msg = match err.code() {
                    Some("AccessDenied") => format!(
                        "access denied: allow s3:DeleteObject on arn:aws:s3:::{bucket}/{key}"
                    ),
                    _ => format!(
                        "{}: {}",
                        err.code().unwrap_or("error"),
                        err.message().unwrap_or("")
                    ),
                };
                out.error_line(format!("delete failed: s3://{bucket}/{key} {msg}"));
                failures.push((
                    Some(key.strip_prefix(prefix).unwrap_or(key).to_string()),
                    msg,
                ));
            }
            let mut deleted = Vec::new();
            for rel in batch {
                if !failed.contains(format!("{prefix}{rel}").as_str()) {
                    if verbose {
                        out.line(format!("delete: {}", url(rel)));
                    }
                    deleted.push(rel.clone());
                }
            }
            (deleted, failures, false)
        }
        Err(e) => {
            let msg = explain(Op::Delete, bucket, None, false, &e);
            out.error_line(format!(
                "delete failed: {} objects under s3://{bucket}/{prefix} {msg}",
                batch.len()
            ));
            let failures = batch
                .iter()
                .map(|rel| (Some(rel.clone()), msg.clone()))
                .collect();
            (Vec::new(), failures, true)
        }
    }
}
