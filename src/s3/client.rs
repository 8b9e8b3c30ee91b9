//! S3 clients: retries, checksums, the bucket's own region, and the `EXTRA_ARGS` request
//! settings (`super::request_extras`). The HTTP client under them (timeouts, stall guard, TLS)
//! is `crate::network`'s, shared with STS and CloudFront.

use aws_config::SdkConfig;
use aws_sdk_s3::Client;
use aws_sdk_s3::config::retry::{RetryConfig, RetryPartition, TokenBucket};
use aws_sdk_s3::config::{RequestChecksumCalculation, ResponseChecksumValidation};

use super::request_extras;
use crate::config::SyncConfig;
use crate::output::Output;

/// Attempts per S3 request (the SDK's standard mode: exponential backoff with jitter, for
/// throttling, 5xx and connection errors). The SDK default is 3; at 8, a request fails only
/// when eight attempts in a row do (1 in 390,000 at a 20% fault rate).
const MAX_ATTEMPTS: u32 = 8;

/// The S3 client for the sync.
///
/// Request checksums are sent only where S3 requires them: plain `Content-Length` bodies work
/// with every S3-compatible store, and single-part ETags (MD5) already let us verify content.
pub(crate) fn s3_client(sdk: &SdkConfig, force_path_style: bool) -> Client {
    let conf = aws_sdk_s3::config::Builder::from(sdk)
        .force_path_style(force_path_style)
        .retry_config(RetryConfig::standard().with_max_attempts(MAX_ATTEMPTS))
        // The standard token bucket stops retrying after ~100 retries per client, which protects
        // long-running services from retry storms. A deploy is a bounded batch that must finish
        // under throttling (503 SlowDown) and flaky networks, so it gets its own unlimited bucket.
        .retry_partition(
            RetryPartition::custom("s3-deploy-pipe")
                .token_bucket(TokenBucket::unlimited())
                .build(),
        )
        .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
        .response_checksum_validation(ResponseChecksumValidation::WhenRequired)
        .build();
    Client::from_conf(conf)
}

/// The client for the pipe's own state: the sync's endpoint and settings, but none of the
/// EXTRA_ARGS that shape the site's objects (grants, SSE-C keys, checksums).
pub(crate) fn state_client(sdk: &SdkConfig, cfg: &SyncConfig) -> Client {
    let extras = crate::config::S3RequestExtras {
        endpoint_url: cfg.request_extras.endpoint_url.clone(),
        request_payer: cfg.request_extras.request_payer,
        ..Default::default()
    };
    request_extras::wrap(s3_client(sdk, cfg.force_path_style), &extras)
}

/// The client for a bucket in `region` (S3 said the bucket is there).
pub(crate) fn sdk_in_region(
    sdk: &SdkConfig,
    cfg: &SyncConfig,
    region: &str,
    out: &Output,
) -> SdkConfig {
    let configured = sdk
        .region()
        .map_or_else(|| "(none)".to_string(), |r| r.to_string());
    out.info(format!(
        "bucket {} is in {region}, not {configured}: using {region}",
        cfg.bucket
    ));
    sdk.to_builder()
        .region(aws_config::Region::new(region.to_string()))
        .build()
}

/// The client for the site's objects: the sync's settings with the `EXTRA_ARGS` request extras.
pub(crate) fn site_client(sdk: &SdkConfig, cfg: &SyncConfig) -> Client {
    request_extras::wrap(s3_client(sdk, cfg.force_path_style), &cfg.request_extras)
}
