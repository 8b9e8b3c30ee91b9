//! `EXTRA_ARGS`: every option of `aws s3 sync` and every aws-cli global option, in one table.
//!
//! The Atlassian pipe appends `EXTRA_ARGS` to its `aws s3 sync` command, so a pipeline may carry
//! any flag that command accepts. [`FLAGS`] lists them all, taken from aws-cli itself: the
//! `ARG_TABLE` of `SyncCommand` (plus the sync strategies' `--size-only`, `--exact-timestamps`
//! and `--delete`) in `awscli/customizations/s3/subcommands.py`, and the global options of
//! `awscli/data/cli.json`, for aws-cli v1 (what the reference `.venv/bin/aws` is) and the
//! extra ones of v2. Each has a [`Status`]: what this pipe does with it. The README's flag
//! table is tested against this table, and the unknown-flag message is built from it.
//!
//! This file is the table (data); [`super::argparse`] parses the words of `EXTRA_ARGS`
//! against it.

/// What the pipe does with a flag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Status {
    /// Honoured with aws-cli's meaning for a local → S3 sync.
    Implemented,
    /// Accepted with one `INFO:` line: aws-cli itself ignores it for a local → S3 sync, or it
    /// cannot change the result.
    Accepted,
    /// Refused because honouring it would make the deploy unsafe; the message says what to do.
    Refused,
    /// `aws s3 sync` rejects it too.
    Rejected,
}

#[cfg_attr(not(test), allow(dead_code))]
impl Status {
    /// The word the README's table uses.
    pub(crate) fn label(self) -> &'static str {
        match self {
            Status::Implemented => "implemented",
            Status::Accepted => "accepted, no effect",
            Status::Refused => "refused",
            Status::Rejected => "rejected (as by aws-cli)",
        }
    }
}

/// How many values a flag takes, as argparse's `nargs`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Arity {
    /// A switch (`store_true`).
    None,
    /// Exactly one value.
    One,
    /// `nargs='?'`: a value, or this constant when none follows.
    Optional(&'static str),
    /// `nargs='+'`: one or more values.
    OneOrMore,
}

/// Where aws-cli defines the flag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Origin {
    /// An option of `aws s3 sync` (v1 and v2).
    Sync,
    /// An option of `aws s3 sync` in aws-cli v2 only.
    SyncV2,
    /// An aws-cli global option (v1 and v2).
    Global,
    /// A global option of aws-cli v1 only.
    GlobalV1,
    /// A global option of aws-cli v2 only.
    GlobalV2,
    /// An option of other `aws s3` commands that `aws s3 sync` rejects.
    NotSync,
}

/// One flag of the table.
#[derive(Debug)]
#[cfg_attr(not(test), allow(dead_code))]
pub(crate) struct Flag {
    pub(crate) name: &'static str,
    pub(crate) arity: Arity,
    /// Values aws-cli accepts (its `choices`); empty: any.
    pub(crate) choices: &'static [&'static str],
    pub(crate) status: Status,
    pub(crate) origin: Origin,
    /// What it does here (the README's "here" column, and the INFO / refusal text).
    pub(crate) here: &'static str,
    /// aws-cli's help, first sentence.
    pub(crate) help: &'static str,
}

const fn flag(
    name: &'static str,
    arity: Arity,
    status: Status,
    origin: Origin,
    here: &'static str,
    help: &'static str,
) -> Flag {
    Flag {
        name,
        arity,
        choices: &[],
        status,
        origin,
        here,
        help,
    }
}

const fn choice(
    name: &'static str,
    arity: Arity,
    choices: &'static [&'static str],
    status: Status,
    origin: Origin,
    here: &'static str,
    help: &'static str,
) -> Flag {
    Flag {
        name,
        arity,
        choices,
        status,
        origin,
        here,
        help,
    }
}

use Arity::{None as Switch, One, OneOrMore, Optional};
use Origin::{Global, GlobalV1, GlobalV2, NotSync, Sync, SyncV2};
use Status::{Accepted, Implemented, Refused, Rejected};

/// The checksum algorithms aws-cli's `--checksum-algorithm` accepts.
pub(crate) const CHECKSUM_ALGORITHMS: &[&str] = &[
    "CRC64NVME",
    "CRC32",
    "SHA256",
    "SHA1",
    "CRC32C",
    "SHA512",
    "XXHASH64",
    "XXHASH3",
    "XXHASH128",
];

/// Every option of `aws s3 sync` and every aws-cli global option, in aws-cli's help order,
/// then the `aws s3` options that `sync` rejects and that pipelines are known to carry.
pub(crate) const FLAGS: &[Flag] = &[
    flag(
        "--dryrun",
        Switch,
        Implemented,
        Sync,
        "Same as `DRY_RUN=true`.",
        "Displays the operations that would be performed using the specified command without actually running them.",
    ),
    flag(
        "--quiet",
        Switch,
        Implemented,
        Sync,
        "No line per file.",
        "Does not display the operations performed from the specified command.",
    ),
    flag(
        "--include",
        One,
        Implemented,
        Sync,
        "Filter, aws-cli's rules; repeatable, later filters win.",
        "Don't exclude files or objects in the command that match the specified pattern.",
    ),
    flag(
        "--exclude",
        One,
        Implemented,
        Sync,
        "Filter, aws-cli's rules; repeatable, later filters win.",
        "Exclude all files or objects from the command that matches the specified pattern.",
    ),
    choice(
        "--acl",
        One,
        crate::config::rules::ACLS,
        Implemented,
        Sync,
        "Same as `ACL`; the flag wins.",
        "Sets the ACL for the object when the command is performed.",
    ),
    flag(
        "--follow-symlinks",
        Switch,
        Implemented,
        Sync,
        "Links inside `LOCAL_PATH` are followed (the default); `FOLLOW_SYMLINKS=true` also follows links that leave it.",
        "Symbolic links are followed only when uploading to S3 from the local filesystem.",
    ),
    flag(
        "--no-follow-symlinks",
        Switch,
        Implemented,
        Sync,
        "Every symlink is skipped.",
        "Symbolic links are not followed.",
    ),
    flag(
        "--no-guess-mime-type",
        Switch,
        Implemented,
        Sync,
        "No Content-Type from the extension.",
        "Do not try to guess the mime type for uploaded files.",
    ),
    choice(
        "--sse",
        Optional("AES256"),
        super::rules::SSE_VALUES,
        Implemented,
        Sync,
        "`ServerSideEncryption`; alone it means `AES256`.",
        "Specifies server-side encryption of the object in S3.",
    ),
    choice(
        "--sse-c",
        Optional("AES256"),
        &["AES256"],
        Implemented,
        Sync,
        "Customer-provided key (with `--sse-c-key`) on every upload, copy and HEAD. The ETag is then not an MD5: `SYNC_COMPARE` falls back to `size-and-mtime` (aws-cli's rule) unless set.",
        "Specifies server-side encryption using customer provided keys of the the object in S3.",
    ),
    flag(
        "--sse-c-key",
        One,
        Implemented,
        Sync,
        "The key (raw, or `fileb://path`); a secret, never printed.",
        "The customer-provided encryption key to use to server-side encrypt the object in S3.",
    ),
    flag(
        "--sse-kms-key-id",
        One,
        Implemented,
        Sync,
        "`SSEKMSKeyId`; needs `--sse aws:kms`.",
        "The customer-managed AWS Key Management Service (KMS) key ID that should be used to server-side encrypt the object in S3.",
    ),
    choice(
        "--sse-c-copy-source",
        Optional("AES256"),
        &["AES256"],
        Rejected,
        Sync,
        "aws-cli rejects it for a local → S3 sync too (\"only supported for copy operations\"). Remove it.",
        "This parameter should only be specified when copying an S3 object that was encrypted server-side with a customer-provided key.",
    ),
    flag(
        "--sse-c-copy-source-key",
        One,
        Rejected,
        Sync,
        "aws-cli rejects it for a local → S3 sync too (only with `--sse-c-copy-source`, for copies). Remove it; the key is never printed.",
        "This parameter should only be specified when copying an S3 object that was encrypted server-side with a customer-provided key.",
    ),
    choice(
        "--storage-class",
        One,
        crate::config::rules::STORAGE_CLASSES,
        Implemented,
        Sync,
        "Same as `STORAGE_CLASS`; the flag wins.",
        "The type of storage to use for the object.",
    ),
    flag(
        "--grants",
        OneOrMore,
        Implemented,
        Sync,
        "`Permission=Grantee_Type=Grantee_ID ...` (read, readacl, writeacl, full) on every upload and copy.",
        "Grant specific permissions to individual users or groups.",
    ),
    flag(
        "--website-redirect",
        One,
        Implemented,
        Sync,
        "`x-amz-website-redirect-location`.",
        "If the bucket is configured as a website, redirects requests for this object to another object in the same bucket or to an external URL.",
    ),
    flag(
        "--content-type",
        One,
        Implemented,
        Sync,
        "Content-Type of every file (no guess).",
        "Specify an explicit content type for this operation.",
    ),
    flag(
        "--cache-control",
        One,
        Implemented,
        Sync,
        "Same as `CACHE_CONTROL`; the flag wins.",
        "Specifies caching behavior along the request/reply chain.",
    ),
    flag(
        "--content-disposition",
        One,
        Implemented,
        Sync,
        "Content-Disposition of every file.",
        "Specifies presentational information for the object.",
    ),
    flag(
        "--content-encoding",
        One,
        Implemented,
        Sync,
        "Same as `CONTENT_ENCODING`; the flag wins.",
        "Specifies what content encodings have been applied to the object and thus what decoding mechanisms must be applied to obtain the media-type referenced by the Content-Type header field.",
    ),
    flag(
        "--content-language",
        One,
        Implemented,
        Sync,
        "Content-Language of every file.",
        "The language the content is in.",
    ),
    flag(
        "--expires",
        One,
        Implemented,
        Sync,
        "Same as `EXPIRES`; the flag wins. ISO 8601, an HTTP date, or seconds since 1970 (`90`), as botocore reads it.",
        "The date and time at which the object is no longer cacheable.",
    ),
    flag(
        "--source-region",
        One,
        Accepted,
        Sync,
        "Only for copies from an S3 source; a local → S3 sync has none.",
        "When transferring objects from an s3 bucket to an s3 bucket, this specifies the region of the source bucket.",
    ),
    flag(
        "--only-show-errors",
        Switch,
        Implemented,
        Sync,
        "Only errors and warnings per file.",
        "Only errors and warnings are displayed.",
    ),
    flag(
        "--no-progress",
        Switch,
        Implemented,
        Sync,
        "No periodic progress line.",
        "File transfer progress is not displayed.",
    ),
    flag(
        "--progress-frequency",
        One,
        Accepted,
        SyncV2,
        "The pipe prints progress every 5 seconds.",
        "Number of seconds to wait before updating file transfer progress.",
    ),
    flag(
        "--progress-multiline",
        Switch,
        Accepted,
        SyncV2,
        "The pipe prints progress as log lines.",
        "Show progress on multiple lines.",
    ),
    flag(
        "--page-size",
        One,
        Implemented,
        Sync,
        "Keys per ListObjectsV2 page (1 to 1000; S3's default is 1000).",
        "The number of results to return in each response to a list operation.",
    ),
    flag(
        "--ignore-glacier-warnings",
        Switch,
        Accepted,
        Sync,
        "Glacier warnings concern downloads and S3 copies only.",
        "Turns off glacier warnings.",
    ),
    flag(
        "--force-glacier-transfer",
        Switch,
        Accepted,
        Sync,
        "Concerns downloads and S3 copies of Glacier objects only.",
        "Forces a transfer request on all Glacier objects in a sync or recursive copy.",
    ),
    choice(
        "--request-payer",
        Optional("requester"),
        &["requester"],
        Implemented,
        Sync,
        "`x-amz-request-payer: requester` on every request.",
        "Confirms that the requester knows that they will be charged for the request.",
    ),
    choice(
        "--checksum-mode",
        One,
        &["ENABLED"],
        Rejected,
        Sync,
        "aws-cli rejects it for a local → S3 sync too (it concerns downloads: \"Expected checksum-mode parameter to be used with ... <S3Uri> <LocalPath>\"). Remove it.",
        "To retrieve the checksum, this mode must be enabled.",
    ),
    choice(
        "--checksum-algorithm",
        One,
        CHECKSUM_ALGORITHMS,
        Implemented,
        Sync,
        "S3 additional checksum on every upload and part, its value computed from the bytes sent (`x-amz-checksum-*`), as aws-cli sends it: CRC64NVME, CRC32, CRC32C, SHA1 or SHA256. SHA512 and the XXHASH ones are refused: the AWS SDK for Rust cannot compute them.",
        "Indicates the algorithm used to create the checksum for the object.",
    ),
    flag(
        "--metadata",
        One,
        Implemented,
        Sync,
        "`k=v,k2=v2` or JSON, on every upload.",
        "A map of metadata to store with the objects in S3.",
    ),
    flag(
        "--copy-props",
        One,
        Accepted,
        SyncV2,
        "Only for copies from an S3 source; headers are re-applied from the settings.",
        "Determines which properties are copied from the source S3 object.",
    ),
    choice(
        "--metadata-directive",
        One,
        &["COPY", "REPLACE"],
        Accepted,
        Sync,
        "Only for copies from an S3 source; re-applied headers always REPLACE.",
        "Specifies whether the metadata is copied from the source object or replaced with metadata provided when copying S3 objects.",
    ),
    choice(
        "--case-conflict",
        One,
        &["ignore", "skip", "warn", "error"],
        Accepted,
        Sync,
        "Concerns downloads to case-insensitive filesystems only.",
        "Configures behavior when a case conflict is detected on a case-insensitive filesystem.",
    ),
    flag(
        "--no-overwrite",
        Switch,
        Refused,
        SyncV2,
        "Not supported: aws-cli v1, which the Atlassian pipe runs, has no such option. Exclude the keys to keep with `--exclude`.",
        "This flag prevents overwriting of files at the destination.",
    ),
    flag(
        "--size-only",
        Switch,
        Implemented,
        Sync,
        "Same as `SYNC_COMPARE=size-only`.",
        "Makes the size of each key the only criteria used to decide whether to sync from source to destination.",
    ),
    flag(
        "--exact-timestamps",
        Switch,
        Accepted,
        Sync,
        "Concerns downloads only, as in aws-cli.",
        "When syncing from S3 to local, same-sized items will be ignored only when the timestamps match exactly.",
    ),
    flag(
        "--delete",
        Switch,
        Implemented,
        Sync,
        "Same as `DELETE_FLAG=true`.",
        "Files that exist in the destination but not in the source are deleted during sync.",
    ),
    flag(
        "--debug",
        Switch,
        Implemented,
        Global,
        "Same as `DEBUG=true` (secrets stay redacted).",
        "Turn on debug logging.",
    ),
    flag(
        "--endpoint-url",
        One,
        Implemented,
        Global,
        "Same as `AWS_ENDPOINT_URL`; the flag wins.",
        "Override command's default URL with the given URL.",
    ),
    flag(
        "--no-verify-ssl",
        Switch,
        Refused,
        Global,
        "Refused: it would send credentials to whoever answers. Mount the CA bundle and set `SSL_CERT_FILE` (or `--ca-bundle`) to it.",
        "By default, the AWS CLI uses SSL when communicating with AWS services.",
    ),
    flag(
        "--no-paginate",
        Switch,
        Accepted,
        Global,
        "aws-cli's `s3` commands always list every page; so does the pipe.",
        "Disable automatic pagination.",
    ),
    choice(
        "--output",
        One,
        &["json", "text", "table", "yaml", "yaml-stream"],
        Accepted,
        Global,
        "`aws s3 sync` prints no structured output.",
        "The formatting style for command output.",
    ),
    flag(
        "--query",
        One,
        Accepted,
        Global,
        "`aws s3 sync` prints no structured output.",
        "A JMESPath query to use in filtering the response data.",
    ),
    flag(
        "--profile",
        One,
        Implemented,
        Global,
        "A profile of the AWS configuration files (`AWS_PROFILE`), for the default credential chain and region.",
        "Use a specific profile from your credential file.",
    ),
    flag(
        "--region",
        One,
        Implemented,
        Global,
        "Same as `AWS_DEFAULT_REGION`; the flag wins.",
        "The region to use.",
    ),
    flag(
        "--version",
        Switch,
        Refused,
        Global,
        "Refused: aws-cli prints its version and exits without syncing. Remove it.",
        "Display the version of this tool.",
    ),
    choice(
        "--color",
        One,
        &["on", "off", "auto"],
        Accepted,
        Global,
        "Colours follow `NO_COLOR` and whether the log is a terminal.",
        "Turn on/off color output.",
    ),
    flag(
        "--no-sign-request",
        Switch,
        Implemented,
        Global,
        "Anonymous requests (no credentials are loaded), for stores that allow public writes.",
        "Do not sign requests.",
    ),
    flag(
        "--ca-bundle",
        One,
        Implemented,
        Global,
        "Same as `SSL_CERT_FILE`: the PEM file of trusted CAs; the flag wins.",
        "The CA certificate bundle to use when verifying SSL certificates.",
    ),
    flag(
        "--cli-read-timeout",
        One,
        Implemented,
        Global,
        "Same as `READ_TIMEOUT`: seconds without data before a request is retried; 0 means none.",
        "The maximum socket read time in seconds.",
    ),
    flag(
        "--cli-connect-timeout",
        One,
        Implemented,
        Global,
        "Same as `CONNECT_TIMEOUT`: seconds to connect; 0 means none.",
        "The maximum socket connect time in seconds.",
    ),
    flag(
        "--v2-debug",
        Switch,
        Accepted,
        GlobalV1,
        "Concerns aws-cli v1's migration warnings only.",
        "Enable AWS CLI v2 migration assistance.",
    ),
    choice(
        "--cli-binary-format",
        One,
        &["base64", "raw-in-base64-out"],
        Accepted,
        GlobalV2,
        "`aws s3 sync` takes no blob parameters.",
        "The formatting style to be used for binary blobs.",
    ),
    flag(
        "--no-cli-pager",
        Switch,
        Accepted,
        GlobalV2,
        "The pipe never pages.",
        "Disable cli pager for output.",
    ),
    flag(
        "--cli-auto-prompt",
        Switch,
        Accepted,
        GlobalV2,
        "The pipe never prompts.",
        "Automatically prompt for CLI input parameters.",
    ),
    flag(
        "--no-cli-auto-prompt",
        Switch,
        Accepted,
        GlobalV2,
        "The pipe never prompts.",
        "Disable automatically prompt for CLI input parameters.",
    ),
    choice(
        "--cli-error-format",
        One,
        &["legacy", "json", "yaml", "text", "table", "enhanced"],
        Accepted,
        GlobalV2,
        "Errors are `✖` lines.",
        "The formatting style for error output.",
    ),
    flag(
        "--recursive",
        Switch,
        Rejected,
        NotSync,
        "aws-cli's `s3 sync` rejects it too (\"Unknown options: --recursive\"): sync is always recursive. Remove it.",
        "Command is performed on all files or objects under the specified directory or prefix.",
    ),
    flag(
        "--human-readable",
        Switch,
        Rejected,
        NotSync,
        "aws-cli's `s3 sync` rejects it too (an `s3 ls` option). Remove it.",
        "Displays file sizes in human readable format.",
    ),
    flag(
        "--summarize",
        Switch,
        Rejected,
        NotSync,
        "aws-cli's `s3 sync` rejects it too (an `s3 ls` option). Remove it.",
        "Displays summary information (number of objects, total size).",
    ),
    flag(
        "--expected-size",
        One,
        Rejected,
        NotSync,
        "aws-cli's `s3 sync` rejects it too (an `s3 cp` option for streams). Remove it.",
        "This argument specifies the expected size of a stream in terms of bytes.",
    ),
];

/// The README's table of flags, generated from [`FLAGS`] (test/versions.rs-style check:
/// `readme_flag_table_matches` compares it with README.md).
#[cfg(test)]
pub(crate) fn readme_table() -> String {
    let mut s = String::from(
        "| Flag | aws-cli | Here | What it does here | aws-cli's help |\n| --- | --- | --- | --- | --- |\n",
    );
    for f in FLAGS {
        let name = match f.arity {
            Arity::None => format!("`{}`", f.name),
            Arity::One => format!("`{} VALUE`", f.name),
            Arity::Optional(_) => format!("`{} [VALUE]`", f.name),
            Arity::OneOrMore => format!("`{} VALUE [VALUE ...]`", f.name),
        };
        let origin = match f.origin {
            Origin::Sync => "s3 sync",
            Origin::SyncV2 => "s3 sync (v2)",
            Origin::Global => "global",
            Origin::GlobalV1 => "global (v1)",
            Origin::GlobalV2 => "global (v2)",
            Origin::NotSync => "not s3 sync",
        };
        s.push_str(&format!(
            "| {name} | {origin} | {} | {} | {} |\n",
            f.status.label(),
            f.here.replace('|', "\\|"),
            f.help.replace('|', "\\|")
        ));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The README's table is this table: regenerate it with
    /// `S3_DEPLOY_PIPE_BLESS=1 cargo test --lib readme_flag_table`.
    #[test]
    fn readme_flag_table_matches() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/README.md");
        let readme = std::fs::read_to_string(path).expect("README.md");
        let (begin, end) = (
            "<!-- extra-args-table:begin -->\n",
            "<!-- extra-args-table:end -->",
        );
        let start = readme.find(begin).expect("README has the begin marker") + begin.len();
        let stop = readme.find(end).expect("README has the end marker");
        let want = readme_table();
        if std::env::var_os("S3_DEPLOY_PIPE_BLESS").is_some() {
            let new = format!("{}{want}{}", &readme[..start], &readme[stop..]);
            std::fs::write(path, new).expect("write README.md");
            return;
        }
        assert!(
            readme[start..stop] == want,
            "README.md's EXTRA_ARGS table differs from extra_args::FLAGS; run S3_DEPLOY_PIPE_BLESS=1 cargo test --lib readme_flag_table"
        );
    }

    #[test]
    fn names_are_unique_and_well_formed() {
        let mut names: Vec<&str> = FLAGS.iter().map(|f| f.name).collect();
        names.sort_unstable();
        let before = names.len();
        names.dedup();
        assert_eq!(before, names.len(), "duplicate flag in FLAGS");
        for f in FLAGS {
            assert!(f.name.starts_with("--"), "{}", f.name);
            assert!(!f.here.is_empty() && !f.help.is_empty(), "{}", f.name);
        }
    }

    /// Every option `aws s3 sync help` lists (aws-cli v1.46, the reference `.venv/bin/aws`),
    /// and v2's extra ones, has an entry.
    #[test]
    fn every_aws_cli_sync_option_is_in_the_table() {
        let v1 = "--dryrun --quiet --include --exclude --acl --follow-symlinks --no-follow-symlinks --no-guess-mime-type --sse --sse-c --sse-c-key --sse-kms-key-id --sse-c-copy-source --sse-c-copy-source-key --storage-class --grants --website-redirect --content-type --cache-control --content-disposition --content-encoding --content-language --expires --source-region --only-show-errors --no-progress --page-size --ignore-glacier-warnings --force-glacier-transfer --request-payer --checksum-mode --checksum-algorithm --metadata --metadata-directive --case-conflict --size-only --exact-timestamps --delete --debug --endpoint-url --no-verify-ssl --no-paginate --output --query --profile --region --version --color --no-sign-request --ca-bundle --cli-read-timeout --cli-connect-timeout --v2-debug";
        let v2 = "--progress-frequency --progress-multiline --copy-props --no-overwrite --cli-binary-format --no-cli-pager --cli-auto-prompt --no-cli-auto-prompt --cli-error-format";
        for name in v1.split(' ').chain(v2.split(' ')) {
            let f = FLAGS
                .iter()
                .find(|f| f.name == name)
                .unwrap_or_else(|| panic!("{name} is missing from FLAGS"));
            // Rejected only where aws-cli rejects it for a local → S3 sync as well.
            if f.status == Status::Rejected {
                assert!(f.here.starts_with("aws-cli rejects it"), "{name}");
            }
        }
    }
}
