//! Are the unchanged objects' headers what the settings give them? Sampled with HeadObject,
//! never one request per object.

use aws_sdk_s3::Client;

use super::SyncError;
use super::headers;
use super::local::LocalFile;
use super::plan::{self, Plan};
use crate::config::SyncConfig;
use crate::output::Output;
use crate::s3::{Op, RemoteObject, S3Error};

/// Mark the classes of unchanged objects whose headers are stale for a re-apply.
pub(super) async fn check(
    client: &Client,
    cfg: &SyncConfig,
    groups: &[headers::Group],
    files: &[LocalFile],
    remote: &[RemoteObject],
    the_plan: &mut Plan,
    out: &Output,
) -> Result<(), SyncError> {
    // Are the unchanged objects' headers what the settings give them? One HEAD per header
    // group, of its least recently written object (see `plan::sample_order`): its fingerprint
    // matches when the group is up to date. Otherwise, one HEAD per header class (same group,
    // same Content-Type and Content-Encoding): a class whose sample has the current
    // fingerprint is done; one whose sample has no fingerprint (written by another tool, e.g.
    // `aws s3 sync` before a migration) but already has exactly the wanted headers is adopted
    // as it is; the others get their headers re-applied, samples last (see `execute`).
    let order = plan::sample_order(&the_plan.unchanged, files, remote);
    let mut group_samples: Vec<Option<usize>> = vec![None; groups.len()];
    for &i in &order {
        group_samples[files[i].group].get_or_insert(i);
    }
    // What HeadObject cannot show (grants) could differ: such objects are never adopted.
    let adoptable = cfg.request_extras.grants.is_empty();
    let mut heads: std::collections::HashMap<usize, headers::ActualHeaders> =
        std::collections::HashMap::new();
    let mut check_group = vec![false; groups.len()];
    for (g, sample) in group_samples.iter().enumerate() {
        let Some(i) = *sample else { continue };
        let actual = head_headers(client, cfg, &files[i].rel).await?;
        check_group[g] = actual.fingerprint() != Some(groups[g].fingerprint.as_str());
        heads.insert(i, actual);
    }
    // Only when a group is not up to date: its kinds of file (the group's sample heads the
    // first of them, so its HEAD is reused).
    let classes = if check_group.iter().any(|c| *c) {
        plan::header_classes(&order, files, |i| {
            let f = &files[i];
            let h = headers::for_file(&f.rel, &groups[f.group], f.encoding);
            (h.content_type, h.content_encoding)
        })
    } else {
        Vec::new()
    };
    let mut stale_classes = Vec::new();
    let mut adopted = 0;
    for class in classes.iter().filter(|c| check_group[c.group]) {
        let i = class.members[0];
        let actual = match heads.remove(&i) {
            Some(a) => a,
            None => head_headers(client, cfg, &files[i].rel).await?,
        };
        let group = &groups[class.group];
        if actual.fingerprint() == Some(group.fingerprint.as_str()) {
            continue;
        }
        let want = headers::for_file(&files[i].rel, group, files[i].encoding);
        if adoptable && actual.fingerprint().is_none() && actual.matches(&want) {
            adopted += class.members.len();
        } else {
            stale_classes.push(class);
        }
    }
    if adopted > 0 {
        out.info(format!(
            "{adopted} unchanged object(s) written by another tool (no header fingerprint) already have the wanted headers: kept as they are"
        ));
    }
    if !stale_classes.is_empty() {
        let before = the_plan.unchanged.len();
        let sentinels: Vec<usize> = group_samples.iter().flatten().copied().collect();
        the_plan.mark_classes_stale(files, &stale_classes, &sentinels);
        out.info(format!(
            "Header settings changed since the last deploy: re-applying headers to {} unchanged object(s) without re-uploading",
            before - the_plan.unchanged.len()
        ));
    }
    Ok(())
}

/// The headers of one object (HeadObject).
async fn head_headers(
    client: &Client,
    cfg: &SyncConfig,
    rel: &str,
) -> Result<headers::ActualHeaders, SyncError> {
    let key = format!("{}{rel}", cfg.prefix);
    let head = client
        .head_object()
        .bucket(&cfg.bucket)
        .key(&key)
        .send()
        .await
        .map_err(|e| S3Error::from_sdk(Op::Head, &cfg.bucket, Some(&key), false, &e))?;
    Ok(headers::ActualHeaders::from_head(&head))
}
