//! What `EXTRA_ARGS` adds to S3 requests beyond the object headers: `--endpoint-url`,
//! `--page-size`, `--grants`, `--request-payer` and `--sse-c`/`--sse-c-key`.
//! (`--checksum-algorithm` needs the bytes: `sync::execute` sends its values.)
//!
//! One interceptor on the sync's S3 client applies them by operation, so that the code that
//! builds each request stays as it is: aws-cli sends these on the same operations.

use aws_sdk_s3::Client;
use aws_sdk_s3::operation::list_objects_v2::ListObjectsV2Input;
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::interceptors::context::{
    BeforeSerializationInterceptorContextMut, BeforeTransmitInterceptorContextMut,
};
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;

use crate::config::S3RequestExtras;

/// The sync's client, with the `EXTRA_ARGS` request settings applied (unchanged when none).
pub(crate) fn wrap(client: Client, extras: &S3RequestExtras) -> Client {
    if extras.is_empty() {
        return client;
    }
    let mut builder = client.config().to_builder();
    if let Some(url) = &extras.endpoint_url {
        builder = builder.endpoint_url(url);
    }
    Client::from_conf(
        builder
            .interceptor(ExtrasInterceptor(extras.clone()))
            .build(),
    )
}

#[derive(Debug)]
struct ExtrasInterceptor(S3RequestExtras);

/// Operations that create an object (and so take grants and, with SSE-C, the key).
const WRITES: &[&str] = &["PutObject", "CreateMultipartUpload", "CopyObject"];
/// Operations that read or write an SSE-C object's data or headers.
const SSE_C_OPERATIONS: &[&str] = &[
    "PutObject",
    "CreateMultipartUpload",
    "UploadPart",
    "CopyObject",
    "HeadObject",
];

impl Intercept for ExtrasInterceptor {
    fn name(&self) -> &'static str {
        "s3-deploy-pipe EXTRA_ARGS"
    }

    fn modify_before_serialization(
        &self,
        context: &mut BeforeSerializationInterceptorContextMut<'_>,
        _runtime_components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let input = context.input_mut();
        if let Some(list) = input.downcast_mut::<ListObjectsV2Input>() {
            list.max_keys = list.max_keys.or(self.0.page_size);
        }
        Ok(())
    }

    fn modify_before_signing(
        &self,
        context: &mut BeforeTransmitInterceptorContextMut<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let operation = cfg
            .load::<Metadata>()
            .map(|m| m.name().to_string())
            .unwrap_or_default();
        let headers = context.request_mut().headers_mut();
        let extras = &self.0;
        if extras.request_payer {
            headers.insert("x-amz-request-payer", "requester");
        }
        if WRITES.contains(&operation.as_str()) {
            for (name, value) in &extras.grants {
                headers.insert(*name, value.clone());
            }
        }
        if let Some(sse_c) = &extras.sse_c
            && SSE_C_OPERATIONS.contains(&operation.as_str())
        {
            let prefixes: &[&str] = if operation == "CopyObject" {
                // Re-applying headers copies an SSE-C object onto itself: the source needs
                // the key as well.
                &[
                    "x-amz-server-side-encryption-customer-",
                    "x-amz-copy-source-server-side-encryption-customer-",
                ]
            } else {
                &["x-amz-server-side-encryption-customer-"]
            };
            for prefix in prefixes {
                headers.insert(format!("{prefix}algorithm"), "AES256");
                headers.insert(
                    format!("{prefix}key"),
                    sse_c.key_base64.expose().to_string(),
                );
                headers.insert(format!("{prefix}key-md5"), sse_c.key_md5_base64.clone());
            }
        }
        Ok(())
    }
}
