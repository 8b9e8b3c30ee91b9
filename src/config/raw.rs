//! The pipe variables exactly as the environment gives them, and values never to be printed.

use std::collections::BTreeMap;
use std::fmt;

use serde::Deserialize;

/// A value that must never be printed. Its `Debug` and `Display` show `***`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub(crate) fn new(value: String) -> Self {
        Secret(value)
    }
    /// The secret itself, for the one place that hands it to AWS.
    pub(crate) fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// The pipe variables exactly as the environment gives them. envy fills it; all strings.
#[derive(Debug, Default, Deserialize)]
#[allow(missing_docs)]
pub(crate) struct RawVars {
    pub aws_default_region: Option<String>,
    pub aws_region: Option<String>,
    pub aws_oidc_role_arn: Option<String>,
    pub aws_role_session_name: Option<String>,
    pub aws_role_session_duration: Option<String>,
    pub aws_access_key_id: Option<String>,
    pub aws_secret_access_key: Option<String>,
    pub aws_session_token: Option<String>,
    pub bitbucket_step_oidc_token: Option<String>,
    pub bitbucket_repo_slug: Option<String>,
    pub bitbucket_build_number: Option<String>,
    pub bitbucket_pipeline_uuid: Option<String>,
    pub bitbucket_pipe_shared_storage_dir: Option<String>,
    pub bitbucket_commit: Option<String>,
    pub s3_bucket: Option<String>,
    pub local_path: Option<String>,
    pub acl: Option<String>,
    pub storage_class: Option<String>,
    pub cache_control: Option<String>,
    pub expires: Option<String>,
    pub content_encoding: Option<String>,
    pub delete_flag: Option<String>,
    pub extra_args: Option<String>,
    pub sync_compare: Option<String>,
    pub max_concurrency: Option<String>,
    pub follow_symlinks: Option<String>,
    pub allow_skipped_files: Option<String>,
    pub dry_run: Option<String>,
    pub max_delete: Option<String>,
    pub delete_grace: Option<String>,
    pub state_prefix: Option<String>,
    pub release_history: Option<String>,
    pub rollback: Option<String>,
    pub releases: Option<String>,
    pub s3_force_path_style: Option<String>,
    /// Read by the SDK itself; here only to choose path-style addressing (see
    /// `sync::path_style_for`).
    pub aws_endpoint_url: Option<String>,
    pub aws_endpoint_url_s3: Option<String>,
    pub distribution_id: Option<String>,
    pub paths: Option<String>,
    pub invalidation_prefix: Option<String>,
    pub max_invalidation_paths: Option<String>,
    pub wait: Option<String>,
    pub wait_timeout: Option<String>,
    pub read_timeout: Option<String>,
    pub connect_timeout: Option<String>,
    pub report_file: Option<String>,
    pub rules: Option<String>,
    pub rules_file: Option<String>,
    pub debug: Option<String>,
    pub no_color: Option<String>,
    /// atlassian/aws-s3-deploy's hook script: refused with the fix (no shell here).
    pub pre_execution_script: Option<String>,
}

/// The process environment, captured once. Values that are not UTF-8 are kept as an error
/// for the variable, so that a bad byte never panics and is reported like any other mistake.
#[derive(Debug, Default, Clone)]
pub struct Env {
    pub(super) vars: BTreeMap<String, String>,
    pub(super) not_utf8: Vec<String>,
}

impl Env {
    /// Capture the current process environment.
    pub fn from_process() -> Self {
        let mut env = Env::default();
        for (k, v) in std::env::vars_os() {
            let Some(key) = k.to_str() else { continue };
            match v.into_string() {
                Ok(v) => {
                    env.vars.insert(key.to_string(), v);
                }
                Err(_) => env.not_utf8.push(key.to_string()),
            }
        }
        env
    }

    /// An environment from pairs (tests).
    #[cfg(test)]
    pub(crate) fn from_pairs<I, K, V>(pairs: I) -> Self
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        Env {
            vars: pairs
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
            not_utf8: Vec::new(),
        }
    }

    pub(super) fn get(&self, key: &str) -> Option<&str> {
        self.vars.get(key).map(String::as_str)
    }
}
