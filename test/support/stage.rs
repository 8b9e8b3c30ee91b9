//! The sync suite's fixture, on any store: [`Stage`] is a store (its own moto server, or a
//! bucket on a shared one such as Ceph RGW) with a recording proxy in front of it and the
//! bucket a pipeline deploys to; and the helpers that compare with what aws-cli does.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use md5::{Digest, Md5};

use super::proxy::{Proxy, Recorded};
use super::*;

pub const MIB: usize = 1024 * 1024;

/// A store with a recording proxy in front of it, and the bucket a pipeline deploys to.
pub struct Stage {
    /// The moto server this stage started, if it started one (held until the stage goes).
    _moto: Option<Moto>,
    url: String,
    pub proxy: Proxy,
    pub bucket: String,
}

impl Stage {
    /// A moto server of its own, with `bucket` created in it.
    pub fn new(bucket: &str) -> Stage {
        let moto = Moto::start();
        let url = moto.url();
        create_bucket(&url, bucket);
        Stage {
            _moto: Some(moto),
            proxy: Proxy::start(&url),
            url,
            bucket: bucket.to_string(),
        }
    }

    /// A bucket that exists already on the store at `url` (e.g. from `Ceph::bucket`).
    pub fn on(url: &str, bucket: &str) -> Stage {
        Stage {
            _moto: None,
            proxy: Proxy::start(url),
            url: url.to_string(),
            bucket: bucket.to_string(),
        }
    }

    /// The store itself: set-up and assertions that must not show in the proxy's log.
    pub fn s3(&self) -> String {
        self.url.clone()
    }

    /// Deploy `dir` to the bucket through the proxy, as a pipeline with static keys would.
    /// `extra` variables come last, so they win (e.g. another `S3_BUCKET`). Afterwards the
    /// proxy's log holds the requests of this run only.
    pub fn sync(&self, dir: &Path, extra: &[(&str, &str)]) -> Run {
        self.sync_in(None, &dir.display().to_string(), extra)
    }

    /// [`Stage::sync`] from a working directory (the clone directory, in Bitbucket), with
    /// LOCAL_PATH as written.
    pub fn sync_in(&self, cwd: Option<&Path>, local_path: &str, extra: &[(&str, &str)]) -> Run {
        self.proxy.clear_requests();
        let mut vars = key_vars(&self.proxy.url());
        vars.push(("S3_BUCKET", self.bucket.clone()));
        vars.push(("LOCAL_PATH", local_path.to_string()));
        let mut all = as_refs(&vars);
        all.extend_from_slice(extra);
        run_pipe_in(&all, cwd)
    }

    /// The requests of the last run for which `pred` holds.
    pub fn seen(&self, pred: impl Fn(&Recorded) -> bool) -> Vec<Recorded> {
        self.proxy.requests_where(pred)
    }

    pub fn count(&self, pred: impl Fn(&Recorded) -> bool) -> usize {
        self.seen(pred).len()
    }

    /// The keys of the last run's PutObject requests, sorted (repeated on retries).
    pub fn put_keys(&self) -> Vec<String> {
        sorted_keys(&self.seen(Recorded::is_put_object))
    }

    /// The last run's requests that could change the bucket: anything but GET and HEAD.
    pub fn writes(&self) -> Vec<String> {
        self.proxy
            .requests()
            .iter()
            // Writes to the site: the release state (test/releases.rs) is left out.
            .filter(|r| r.method != "GET" && r.method != "HEAD" && !r.is_state())
            .map(|r| format!("{} {}?{}", r.method, r.decoded_path(), r.query))
            .collect()
    }

    pub fn keys(&self) -> Vec<String> {
        keys(&self.url, &self.bucket)
    }

    pub fn get(&self, key: &str) -> Vec<u8> {
        get(&self.url, &self.bucket, key)
    }

    pub fn put(&self, key: &str, body: &[u8]) {
        put(&self.url, &self.bucket, key, body);
    }

    pub fn headers(&self, key: &str) -> BTreeMap<String, String> {
        headers_of(&self.url, &self.bucket, key)
    }

    /// Each of `files` is an object with exactly its bytes, and the MD5 of them as its ETag.
    pub fn assert_holds(&self, files: &[(&str, &[u8])]) {
        for (key, body) in files {
            assert_eq!(self.get(key), *body, "bytes of {key}");
            let h = self.headers(key);
            assert_eq!(h.get("etag"), Some(&local_md5(body)), "ETag of {key}");
        }
    }

    /// Each object's Content-Type, as the store answers it.
    pub fn assert_content_types(&self, want: &[(&str, &str)]) {
        for (key, content_type) in want {
            let got = self.headers(key).get("content-type").cloned();
            assert_eq!(got.as_deref(), Some(*content_type), "Content-Type of {key}");
        }
    }

    /// ETag of every object, by key.
    pub fn etags(&self) -> BTreeMap<String, String> {
        list(&self.url, &self.bucket)
            .into_iter()
            .map(|o| (o.key, o.etag))
            .collect()
    }
}

/// A folder as aws-cli prints it in `upload:` lines, run from the test's working directory:
/// Python's `os.path.relpath` (aws-cli's `relative_path`), asked of the virtualenv's Python.
pub fn shown(dir: &Path) -> String {
    let out = Command::new(venv_bin().join("python"))
        .args(["-c", "import os, sys; print(os.path.relpath(sys.argv[1]))"])
        .arg(dir)
        .output()
        .expect("python");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

pub fn sorted_keys(reqs: &[Recorded]) -> Vec<String> {
    let mut keys: Vec<String> = reqs.iter().filter_map(Recorded::s3_key).collect();
    keys.sort();
    keys
}

pub fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

/// S3's multipart ETag for `data` uploaded in parts of `part` bytes, quoted as S3 lists it.
pub fn multipart_etag(data: &[u8], part: usize) -> String {
    let mut cat = Vec::new();
    for chunk in data.chunks(part) {
        cat.extend_from_slice(&Md5::digest(chunk));
    }
    format!("\"{}-{}\"", md5_hex(&cat), data.len().div_ceil(part))
}

/// `aws s3 sync` from the project's virtualenv, straight at the store (aws-cli v1 crashes on
/// Ceph RGW's error answers, whose Message is empty: use it for calls that succeed).
pub fn aws_cli_sync(endpoint: &str, dir: &Path, target: &str, flags: &[&str]) {
    let out = aws_cli_command(endpoint)
        .arg("s3")
        .arg("sync")
        .arg(dir)
        .arg(target)
        .args(flags)
        .arg("--no-progress")
        .output()
        .expect("run aws-cli (test/setup installs it)");
    assert!(
        out.status.success(),
        "aws s3 sync failed\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The integrity suite's site on a [`Stage`]: two small files, a JSON file the rules compress,
/// and `big.bin` of two multipart parts.
pub struct Checked {
    pub stage: Stage,
    pub dir: tempfile::TempDir,
    pub big: Vec<u8>,
}

/// The part size of the pipe's (and aws-cli's) multipart uploads.
pub const PART: usize = 8 * MIB;

/// The integrity suite's rules: `*.json` compressed, so a transformed body is checked too.
const CHECKED_RULES: &str = r#"
- pattern: "*.json"
  compress: gzip
"#;

impl Checked {
    pub fn on(stage: Stage) -> Checked {
        let big = noise(PART + PART / 2, 3); // two parts
        let json =
            "{\"k\": \"value value value value value value value value value\"}\n".repeat(200);
        let dir = site(&[
            ("a.css", b"body { color: red }"),
            ("index.html", b"<h1>hi</h1>"),
            ("data.json", json.as_bytes()),
            ("big.bin", big.as_slice()),
        ]);
        Checked { stage, dir, big }
    }

    /// The variables of a deploy of the site to the stage's bucket, through its proxy.
    pub fn vars(&self) -> Vec<(&'static str, String)> {
        let mut v = key_vars(&self.stage.proxy.url());
        v.extend([
            ("S3_BUCKET", self.stage.bucket.clone()),
            ("LOCAL_PATH", self.dir.path().display().to_string()),
            ("RULES", CHECKED_RULES.to_string()),
        ]);
        v
    }

    /// Every PutObject and UploadPart of the last run carried the Content-MD5 of its body: a.css,
    /// index.html, data.json (compressed) and the two parts of big.bin.
    #[track_caller]
    pub fn assert_every_upload_carried_its_content_md5(&self) {
        let writes = self.stage.seen(|r| r.is_put_object() || r.is_upload_part());
        assert_eq!(writes.len(), 5, "{writes:#?}");
        for r in &writes {
            let sent = r
                .header("content-md5")
                .unwrap_or_else(|| panic!("no Content-MD5 on {} {}?{}", r.method, r.path, r.query));
            let want = if r.is_upload_part() {
                let n: usize = r
                    .query_param("partNumber")
                    .and_then(|n| n.parse().ok())
                    .expect("partNumber");
                let start = (n - 1) * PART;
                b64_md5(&self.big[start..(start + PART).min(self.big.len())])
            } else {
                assert_eq!(r.body_len, r.body.len(), "small bodies are recorded whole");
                b64_md5(&r.body)
            };
            assert_eq!(sent, want, "{} {}", r.path, r.query);
        }
    }
}

/// The base64 MD5 of `b`, as `Content-MD5` carries it.
pub fn b64_md5(b: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(Md5::digest(b))
}
