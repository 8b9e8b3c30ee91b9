//! The IAM permissions the pipe needs, as one table: [`PERMISSIONS`] lists every AWS operation
//! the pipe calls (S3, STS, CloudFront), the IAM action each needs, on which resource, and the
//! features of the pipe that call it. Three views come from it, so that they cannot drift:
//!
//! - the README's policies, one per use (`readme_block`; `readme_iam_policies_match` keeps
//!   README.md equal to it);
//! - the access-denied messages: [`s3_allow`] for `s3::error::explain`, [`allow`] and
//!   [`actions`] for CloudFront and STS;
//! - the code itself: `every_sdk_call_is_in_the_table` fails when a file of `src/` calls an SDK
//!   operation that the table does not list, or the table lists one that nothing calls.
//!
//! Sources: "Required permissions for Amazon S3 API operations" and "Multipart upload API and
//! permissions" (S3 User Guide), the operations' own documentation in the SDK (CopyObject,
//! CreateMultipartUpload, UploadPart, HeadObject, DeleteObjects), and the Service
//! Authorization Reference for CloudFront and STS.

/// The AWS service of an operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Service {
    S3,
    Sts,
    CloudFront,
}

/// What an action is allowed on. The order is the order of the statements in a policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Resource {
    /// The bucket: `arn:aws:s3:::BUCKET`.
    Bucket,
    /// The objects below the deployed prefix: `arn:aws:s3:::BUCKET/site/*`.
    Objects,
    /// The objects below the state prefix (`STATE_PREFIX`, by default `<prefix>.s3-deploy-pipe/`).
    State,
    /// The CloudFront distribution.
    Distribution,
    /// The customer-managed KMS key that encrypts the objects (SSE-KMS).
    KmsKey,
    /// The role itself: its trust policy allows the action, not a permissions policy.
    TrustPolicy,
}

/// A feature of the pipe that calls an operation: a policy for a use is the union of the rows
/// of its features.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Feature {
    /// Every deploy: the listing, uploads (multipart, and its abort), the header samples
    /// (HeadObject) and header re-applies (CopyObject).
    Deploy,
    /// `DELETE_FLAG=true` (and `DELETE_GRACE`, which deletes later).
    Deletes,
    /// `ACL`, `--acl` or `--grants`: the objects' ACL is set.
    Acl,
    /// The release state (on by default: `RELEASE_HISTORY` above 0, or `DELETE_GRACE`):
    /// `state.json` and the manifests, read, written and trimmed; `RELEASES=list`.
    Releases,
    /// `ROLLBACK`, and the VersionIds a deploy records so that its release can be rolled back
    /// to (the bucket's versioning, the listing of versions).
    Rollback,
    /// SSE-KMS (or DSSE-KMS) with a customer-managed key: `--sse-kms-key-id`, or the bucket's
    /// default encryption. The AWS managed key `aws/s3` needs no IAM permission.
    SseKms,
    /// `DISTRIBUTION_ID`.
    Invalidation,
    /// `WAIT=true`: the invalidation is polled until it completes.
    Wait,
    /// `AWS_OIDC_ROLE_ARN`: the step's OIDC token is traded for the role's credentials.
    Oidc,
}

impl Feature {
    /// The README's word for it.
    #[cfg(test)]
    fn label(self) -> &'static str {
        match self {
            Feature::Deploy => "deploy",
            Feature::Deletes => "deletes",
            Feature::Acl => "`ACL`",
            Feature::Releases => "releases",
            Feature::Rollback => "rollback",
            Feature::SseKms => "SSE-KMS",
            Feature::Invalidation => "invalidation",
            Feature::Wait => "`WAIT`",
            Feature::Oidc => "OIDC",
        }
    }
}

/// One row: `operation` needs `action` on `resource`, and `features` call it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Permission {
    pub(crate) service: Service,
    /// The API operation as AWS names it (`ListObjectsV2`); the SDK's method is its snake
    /// case (`list_objects_v2`).
    pub(crate) operation: &'static str,
    /// The IAM action.
    pub(crate) action: &'static str,
    pub(crate) resource: Resource,
    /// The features that make the pipe call the operation and need this action.
    pub(crate) features: &'static [Feature],
    /// When the operation needs the action only in some requests; `None`: in every request.
    pub(crate) when: Option<&'static str>,
}

const fn row(
    service: Service,
    operation: &'static str,
    action: &'static str,
    resource: Resource,
    features: &'static [Feature],
) -> Permission {
    Permission {
        service,
        operation,
        action,
        resource,
        features,
        when: None,
    }
}

const fn row_when(
    service: Service,
    operation: &'static str,
    action: &'static str,
    resource: Resource,
    features: &'static [Feature],
    when: &'static str,
) -> Permission {
    Permission {
        service,
        operation,
        action,
        resource,
        features,
        when: Some(when),
    }
}

use Feature::{Acl, Deletes, Deploy, Invalidation, Oidc, Releases, Rollback, SseKms, Wait};
use Resource::{Bucket, Distribution, KmsKey, Objects, State, TrustPolicy};
use Service::{CloudFront, S3, Sts};

/// Every AWS operation the pipe calls, and what each needs. A new SDK call needs its rows here
/// (`every_sdk_call_is_in_the_table`), and then the README regenerated
/// (`S3_DEPLOY_PIPE_BLESS=1 cargo test --lib readme_iam_policies`).
pub(crate) const PERMISSIONS: &[Permission] = &[
    // The listing of the prefix, once per deploy.
    row(S3, "ListObjectsV2", "s3:ListBucket", Bucket, &[Deploy]),
    // Header samples, and the check of a CompleteMultipartUpload retried after it succeeded.
    row(S3, "HeadObject", "s3:GetObject", Objects, &[Deploy]),
    // Uploads: single part, then multipart (8 MiB and more); every multipart operation but
    // the abort needs s3:PutObject.
    row(S3, "PutObject", "s3:PutObject", Objects, &[Deploy]),
    row(S3, "PutObject", "s3:PutObject", State, &[Releases]),
    row(S3, "PutObject", "s3:PutObjectAcl", Objects, &[Acl]),
    row(S3, "PutObject", "kms:GenerateDataKey", KmsKey, &[SseKms]),
    row(
        S3,
        "CreateMultipartUpload",
        "s3:PutObject",
        Objects,
        &[Deploy],
    ),
    row(
        S3,
        "CreateMultipartUpload",
        "s3:PutObjectAcl",
        Objects,
        &[Acl],
    ),
    row(
        S3,
        "CreateMultipartUpload",
        "kms:GenerateDataKey",
        KmsKey,
        &[SseKms],
    ),
    row(S3, "UploadPart", "s3:PutObject", Objects, &[Deploy]),
    row(S3, "UploadPart", "kms:Decrypt", KmsKey, &[SseKms]),
    row(
        S3,
        "CompleteMultipartUpload",
        "s3:PutObject",
        Objects,
        &[Deploy],
    ),
    // A failed or interrupted multipart upload is aborted, so that its parts are not left
    // behind (and billed): a separate action, which s3:PutObject does not cover.
    row(
        S3,
        "AbortMultipartUpload",
        "s3:AbortMultipartUpload",
        Objects,
        &[Deploy],
    ),
    // A copy onto the same key: a header re-apply (deploy) or a restore (rollback).
    row(
        S3,
        "CopyObject",
        "s3:GetObject",
        Objects,
        &[Deploy, Rollback],
    ),
    row(
        S3,
        "CopyObject",
        "s3:PutObject",
        Objects,
        &[Deploy, Rollback],
    ),
    row_when(
        S3,
        "CopyObject",
        "s3:GetObjectVersion",
        Objects,
        &[Rollback],
        "to copy an earlier version of the key (a rollback)",
    ),
    row(S3, "CopyObject", "s3:PutObjectAcl", Objects, &[Acl]),
    row(S3, "CopyObject", "kms:Decrypt", KmsKey, &[SseKms]),
    row(S3, "CopyObject", "kms:GenerateDataKey", KmsKey, &[SseKms]),
    // Deletes of site keys (sync, rollback) and of the state's manifests dropped from the
    // history.
    row(
        S3,
        "DeleteObjects",
        "s3:DeleteObject",
        Objects,
        &[Deletes, Rollback],
    ),
    row(S3, "DeleteObjects", "s3:DeleteObject", State, &[Releases]),
    // `state.json` and the manifests.
    row(S3, "GetObject", "s3:GetObject", State, &[Releases]),
    row_when(
        S3,
        "GetObject",
        "s3:ListBucket",
        Bucket,
        &[Releases],
        "for a missing `state.json` to read as absent (404), not as denied (403)",
    ),
    row_when(
        S3,
        "GetObject",
        "kms:Decrypt",
        KmsKey,
        &[SseKms],
        "when the bucket's default encryption uses the key",
    ),
    // Releases that can be rolled back to record VersionIds; a rollback restores them.
    row(
        S3,
        "GetBucketVersioning",
        "s3:GetBucketVersioning",
        Bucket,
        &[Rollback],
    ),
    row(
        S3,
        "ListObjectVersions",
        "s3:ListBucketVersions",
        Bucket,
        &[Rollback],
    ),
    row(
        Sts,
        "AssumeRoleWithWebIdentity",
        "sts:AssumeRoleWithWebIdentity",
        TrustPolicy,
        &[Oidc],
    ),
    row(
        CloudFront,
        "CreateInvalidation",
        "cloudfront:CreateInvalidation",
        Distribution,
        &[Invalidation],
    ),
    row(
        CloudFront,
        "GetInvalidation",
        "cloudfront:GetInvalidation",
        Distribution,
        &[Wait],
    ),
];

/// The names that make a resource's ARN.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Names<'a> {
    pub(crate) bucket: &'a str,
    /// The deployed prefix: empty, or ending in `/`.
    pub(crate) prefix: &'a str,
    /// The state prefix, ending in `/`.
    pub(crate) state_prefix: &'a str,
    /// The AWS account, for CloudFront and KMS ARNs.
    pub(crate) account: &'a str,
    pub(crate) distribution: &'a str,
}

impl Resource {
    /// The ARN (a pattern for the object resources); for [`Resource::TrustPolicy`], where
    /// the action goes.
    pub(crate) fn arn(self, n: &Names<'_>) -> String {
        match self {
            Resource::Bucket => format!("arn:aws:s3:::{}", n.bucket),
            Resource::Objects => format!("arn:aws:s3:::{}/{}*", n.bucket, n.prefix),
            Resource::State => format!("arn:aws:s3:::{}/{}*", n.bucket, n.state_prefix),
            Resource::Distribution => format!(
                "arn:aws:cloudfront::{}:distribution/{}",
                n.account, n.distribution
            ),
            Resource::KmsKey => format!("arn:aws:kms:REGION:{}:key/KEY_ID", n.account),
            Resource::TrustPolicy => {
                "the role's trust policy (not its permissions policy)".to_string()
            }
        }
    }
}

/// The actions of `service` that `features` need, in the table's order, each once.
pub(crate) fn actions(service: Service, features: &[Feature]) -> Vec<&'static str> {
    let mut out: Vec<&'static str> = Vec::new();
    for p in PERMISSIONS {
        if p.service == service
            && p.features.iter().any(|f| features.contains(f))
            && !out.contains(&p.action)
        {
            out.push(p.action);
        }
    }
    out
}

/// `a`, `a and b`, `a, b and c`.
fn and(items: &[&str]) -> String {
    match items {
        [] => String::new(),
        [one] => (*one).to_string(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    }
}

/// What to allow for `features` of `service`: `allow A and B on ARN` (one clause per
/// resource, joined by `, and`).
pub(crate) fn allow(service: Service, features: &[Feature], names: &Names<'_>) -> String {
    let mut by_resource: Vec<(Resource, Vec<&'static str>)> = Vec::new();
    for p in PERMISSIONS {
        if p.service != service || !p.features.iter().any(|f| features.contains(f)) {
            continue;
        }
        match by_resource.iter_mut().find(|(r, _)| *r == p.resource) {
            Some((_, acts)) if acts.contains(&p.action) => {}
            Some((_, acts)) => acts.push(p.action),
            None => by_resource.push((p.resource, vec![p.action])),
        }
    }
    let clauses: Vec<String> = by_resource
        .iter()
        .map(|(r, acts)| format!("{} on {}", and(acts), r.arn(names)))
        .collect();
    format!("allow {}", clauses.join(", and "))
}

/// What to allow when S3 refused `operation` (the API name, e.g. `PutObject`) on `key` (or,
/// without one, every key) of `bucket`: the S3 actions of the operation's rows, with
/// s3:PutObjectAcl when `acl` (an ACL or grants are set), and the actions only some requests
/// need with their condition. `None` when the table has no S3 row for the operation.
pub(crate) fn s3_allow(
    operation: &str,
    bucket: &str,
    key: Option<&str>,
    acl: bool,
) -> Option<String> {
    let arn = |r: Resource| match r {
        Resource::Bucket => format!("arn:aws:s3:::{bucket}"),
        _ => match key {
            Some(k) => format!("arn:aws:s3:::{bucket}/{k}"),
            None => format!("arn:aws:s3:::{bucket}/*"),
        },
    };
    let rows = PERMISSIONS.iter().filter(|p| {
        p.service == Service::S3
            && p.operation == operation
            && matches!(p.resource, Bucket | Objects | State)
    });
    let (mut always, mut with_acl, mut sometimes) = (Vec::new(), Vec::new(), Vec::new());
    let mut resource = None;
    for p in rows {
        let list = if p.when.is_some() {
            &mut sometimes
        } else if p.features.contains(&Feature::Acl) {
            if !acl {
                continue;
            }
            &mut with_acl
        } else {
            resource.get_or_insert(arn(p.resource));
            &mut always
        };
        if !list.iter().any(|q: &&Permission| q.action == p.action) {
            list.push(p);
        }
    }
    let resource = resource?;
    let names: Vec<&str> = always.iter().chain(&with_acl).map(|p| p.action).collect();
    let mut text = format!(
        "allow {}{} on {resource}",
        and(&names),
        if with_acl.is_empty() {
            ""
        } else {
            " (ACL is set)"
        }
    );
    for p in sometimes {
        let on = arn(p.resource);
        if on == resource {
            text.push_str(&format!(", and {} {}", p.action, p.when.unwrap_or("")));
        } else {
            text.push_str(&format!(
                ", and {} on {on} {}",
                p.action,
                p.when.unwrap_or("")
            ));
        }
    }
    Some(text)
}

/// The README's policies, generated from the table, and the tests that keep the README and
/// the code's calls equal to it.
#[cfg(test)]
mod readme;
