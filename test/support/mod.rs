//! Test support: a moto server per test, a real Ceph RGW per test binary (`ceph`), a recording
//! proxy, and a runner for the pipe binary.
//!
//! A test reads as a scenario: start [`Moto`], make a bucket, set the variables a pipeline
//! would, [`run_pipe`], then assert on the bucket's objects and headers and on the requests
//! the [`proxy::Proxy`] saw.

pub mod ceph;
pub mod limit_proxy;
pub mod proxy;
pub mod release;
pub mod stage;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
use md5::{Digest, Md5};

pub const ACCESS_KEY: &str = "AKIAFIXTUREKEY000001";
pub const SECRET_KEY: &str = "fixture/secret/key/never-printed-0123456789";

fn project_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The virtualenv's bin dir, with moto and awscli. Installed by `test/setup` (which `test/run`
/// calls); a plain `cargo test` on a fresh clone runs `test/setup` once, from the first test
/// that needs it, so that it works there too, or fails with what to do.
pub fn venv_bin() -> PathBuf {
    static READY: std::sync::OnceLock<Result<(), String>> = std::sync::OnceLock::new();
    let ready = READY.get_or_init(|| {
        let setup = project_dir().join("test").join("setup");
        // test/setup returns at once when everything is installed.
        match Command::new(&setup).stdout(Stdio::null()).status() {
            Ok(s) if s.success() => Ok(()),
            Ok(s) => Err(format!(
                "{} failed ({s}): the tests need moto and awscli from PyPI in .venv; run it to see why",
                setup.display()
            )),
            Err(e) => Err(format!("cannot run {}: {e}", setup.display())),
        }
    });
    if let Err(e) = ready {
        panic!("{e}");
    }
    project_dir().join(".venv").join("bin")
}

/// A moto server on 127.0.0.1 on a free port, killed on drop.
pub struct Moto {
    child: Child,
    pub port: u16,
}

impl Moto {
    pub fn start() -> Moto {
        Self::start_with(&[])
    }

    /// Start with extra environment for the server (e.g. MOTO_INVALIDATION_IN_PROGRESS_READS).
    pub fn start_with(env: &[(&str, &str)]) -> Moto {
        let python = venv_bin().join("python");
        assert!(
            python.exists(),
            "{} is missing: run test/setup (the README's test command does)",
            python.display()
        );
        for _attempt in 0..3 {
            let port = free_port();
            let mut cmd = Command::new(&python);
            cmd.arg(project_dir().join("test").join("moto_server.py"))
                .arg(port.to_string())
                .stdout(Stdio::null())
                .stderr(Stdio::null());
            for (k, v) in env {
                cmd.env(k, v);
            }
            let child = cmd.spawn().expect("spawn moto server");
            let mut moto = Moto { child, port };
            if moto.wait_ready(Duration::from_secs(30)) {
                return moto;
            }
            // The port was taken in between, or moto failed: try another.
            let _ = moto.child.kill();
        }
        panic!("moto server did not start");
    }

    fn wait_ready(&mut self, timeout: Duration) -> bool {
        let start = Instant::now();
        while start.elapsed() < timeout {
            if let Ok(Some(_)) = self.child.try_wait() {
                return false;
            }
            if let Ok(mut s) = TcpStream::connect(("127.0.0.1", self.port)) {
                let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
                let req = format!(
                    "GET /moto-api/ HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nConnection: close\r\n\r\n",
                    self.port
                );
                if s.write_all(req.as_bytes()).is_ok() {
                    let mut buf = [0u8; 12];
                    if s.read_exact(&mut buf).is_ok() && buf.starts_with(b"HTTP/1.1 200") {
                        return true;
                    }
                }
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        false
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// The outcome of one pipe run.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn all(&self) -> String {
        format!("{}\n{}", self.stdout, self.stderr)
    }
    #[track_caller]
    pub fn assert_code(&self, code: i32) -> &Self {
        assert_eq!(
            self.code, code,
            "exit code\n--- stdout\n{}\n--- stderr\n{}",
            self.stdout, self.stderr
        );
        self
    }
    #[track_caller]
    pub fn assert_contains(&self, text: &str) -> &Self {
        assert!(
            self.all().contains(text),
            "output lacks {text:?}\n--- stdout\n{}\n--- stderr\n{}",
            self.stdout,
            self.stderr
        );
        self
    }
}

/// Run the pipe binary with exactly these variables (plus PATH and a safe AWS environment).
pub fn run_pipe(vars: &[(&str, &str)]) -> Run {
    run_pipe_in(vars, None)
}

/// Run the pipe binary in a working directory.
pub fn run_pipe_in(vars: &[(&str, &str)], cwd: Option<&Path>) -> Run {
    let mut cmd = pipe_command(vars, cwd);
    let out = cmd.output().expect("run pipe");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// The command to run the pipe, for tests that need to control the child (signals).
pub fn pipe_command(vars: &[(&str, &str)], cwd: Option<&Path>) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_s3-deploy-pipe"));
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_CONFIG_FILE", "/nonexistent/aws-config")
        .env(
            "AWS_SHARED_CREDENTIALS_FILE",
            "/nonexistent/aws-credentials",
        )
        .stdin(Stdio::null());
    for (k, v) in vars {
        cmd.env(k, v);
    }
    if let Some(dir) = cwd {
        cmd.current_dir(dir);
    }
    cmd
}

/// The variables for a deploy with static keys against `endpoint`.
pub fn key_vars(endpoint: &str) -> Vec<(&'static str, String)> {
    vec![
        ("AWS_DEFAULT_REGION", "us-east-1".to_string()),
        ("AWS_ACCESS_KEY_ID", ACCESS_KEY.to_string()),
        ("AWS_SECRET_ACCESS_KEY", SECRET_KEY.to_string()),
        ("AWS_ENDPOINT_URL", endpoint.to_string()),
        ("S3_FORCE_PATH_STYLE", "true".to_string()),
    ]
}

/// Borrow a `Vec<(&str, String)>` as `&[(&str, &str)]`.
pub fn as_refs<'a>(v: &'a [(&'a str, String)]) -> Vec<(&'a str, &'a str)> {
    v.iter().map(|(k, v)| (*k, v.as_str())).collect()
}

fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime")
    })
}

pub fn block_on<F: std::future::Future>(f: F) -> F::Output {
    runtime().block_on(f)
}

/// A direct S3 client on the emulator (not through the pipe), for set-up and assertions.
pub fn s3(endpoint: &str) -> aws_sdk_s3::Client {
    let conf = aws_sdk_s3::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url(endpoint)
        .force_path_style(true)
        .credentials_provider(Credentials::new(ACCESS_KEY, SECRET_KEY, None, None, "test"))
        .build();
    aws_sdk_s3::Client::from_conf(conf)
}

pub fn cloudfront(endpoint: &str) -> aws_sdk_cloudfront::Client {
    let conf = aws_sdk_cloudfront::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url(endpoint)
        .credentials_provider(Credentials::new(ACCESS_KEY, SECRET_KEY, None, None, "test"))
        .build();
    aws_sdk_cloudfront::Client::from_conf(conf)
}

pub fn create_bucket(endpoint: &str, bucket: &str) {
    block_on(s3(endpoint).create_bucket().bucket(bucket).send()).expect("create bucket");
}

/// One listed object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Obj {
    pub key: String,
    pub size: i64,
    pub etag: String,
}

/// Every object of the site in the bucket, sorted by key: the pipe's own release state (keys
/// with a `.s3-deploy-pipe` segment, see test/releases.rs) left out, so that a test compares
/// the deployed site, e.g. with what `aws s3 sync` made.
pub fn list(endpoint: &str, bucket: &str) -> Vec<Obj> {
    list_all(endpoint, bucket)
        .into_iter()
        .filter(|o| !o.key.split('/').any(|s| s == ".s3-deploy-pipe"))
        .collect()
}

/// Every object in the bucket, sorted by key, the pipe's state included.
pub fn list_all(endpoint: &str, bucket: &str) -> Vec<Obj> {
    let client = s3(endpoint);
    let mut out = Vec::new();
    let mut token = None;
    loop {
        let resp = block_on(
            client
                .list_objects_v2()
                .bucket(bucket)
                .set_continuation_token(token.clone())
                .send(),
        )
        .expect("list");
        for o in resp.contents() {
            out.push(Obj {
                key: o.key().unwrap_or_default().to_string(),
                size: o.size().unwrap_or_default(),
                etag: o.e_tag().unwrap_or_default().to_string(),
            });
        }
        match resp.next_continuation_token() {
            Some(t) if resp.is_truncated() == Some(true) => token = Some(t.to_string()),
            _ => break,
        }
    }
    out.sort_by(|a, b| a.key.cmp(&b.key));
    out
}

/// Turn on the bucket's versioning (what rollbacks need).
pub fn enable_versioning(endpoint: &str, bucket: &str) {
    block_on(
        s3(endpoint)
            .put_bucket_versioning()
            .bucket(bucket)
            .versioning_configuration(
                aws_sdk_s3::types::VersioningConfiguration::builder()
                    .status(aws_sdk_s3::types::BucketVersioningStatus::Enabled)
                    .build(),
            )
            .send(),
    )
    .expect("enable versioning");
}

/// Every key in the bucket, the pipe's state included.
pub fn all_keys(endpoint: &str, bucket: &str) -> Vec<String> {
    list_all(endpoint, bucket)
        .into_iter()
        .map(|o| o.key)
        .collect()
}

/// The site's keys (see [`list`]).
pub fn keys(endpoint: &str, bucket: &str) -> Vec<String> {
    list(endpoint, bucket).into_iter().map(|o| o.key).collect()
}

pub fn get(endpoint: &str, bucket: &str, key: &str) -> Vec<u8> {
    let resp = block_on(s3(endpoint).get_object().bucket(bucket).key(key).send()).expect("get");
    block_on(resp.body.collect())
        .expect("body")
        .into_bytes()
        .to_vec()
}

pub fn head(
    endpoint: &str,
    bucket: &str,
    key: &str,
) -> aws_sdk_s3::operation::head_object::HeadObjectOutput {
    block_on(s3(endpoint).head_object().bucket(bucket).key(key).send()).expect("head")
}

pub fn put(endpoint: &str, bucket: &str, key: &str, body: &[u8]) {
    block_on(
        s3(endpoint)
            .put_object()
            .bucket(bucket)
            .key(key)
            .body(body.to_vec().into())
            .send(),
    )
    .expect("put");
}

/// Open multipart uploads left in a bucket.
pub fn open_uploads(endpoint: &str, bucket: &str) -> usize {
    block_on(s3(endpoint).list_multipart_uploads().bucket(bucket).send())
        .expect("list uploads")
        .uploads()
        .len()
}

/// The hex MD5 of `data`.
pub fn md5_hex(data: &[u8]) -> String {
    hex::encode(Md5::digest(data))
}

/// The ETag S3 gives `data` uploaded in one piece: its MD5, quoted as S3 lists it.
pub fn local_md5(data: &[u8]) -> String {
    format!("\"{}\"", md5_hex(data))
}

/// Deterministic bytes with a short period (compressible), `n` of them.
pub fn deterministic_bytes(n: usize, seed: u8) -> Vec<u8> {
    (0..n)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

/// Deterministic incompressible bytes (xorshift64), `len` of them.
pub fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// A Bitbucket OIDC token for the emulator's STS (claims only, not signed), valid until 2100.
pub fn oidc_token() -> String {
    s3_deploy_pipe::jwt::make_test_token(
        r#"{"iss":"https://api.bitbucket.org/2.0/workspaces/w/pipelines-config/identity/oidc","aud":"ari:cloud:bitbucket::workspace/x","sub":"{r}:{s}","exp":4102444800}"#,
    )
}

/// A temporary site folder, built from (relative path, content) pairs.
pub fn site(files: &[(&str, &[u8])]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    write_files(dir.path(), files);
    dir
}

pub fn write_files(root: &Path, files: &[(&str, &[u8])]) {
    for (rel, content) in files {
        let path = root.join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("mkdir");
        }
        std::fs::write(&path, content).expect("write");
    }
}

/// Set every file's mtime to now + `secs_ahead`, as a fresh CI clone does.
pub fn touch_all(root: &Path, secs_ahead: u64) {
    let when = std::time::SystemTime::now() + Duration::from_secs(secs_ahead);
    for entry in walk(root) {
        let f = std::fs::File::options()
            .write(true)
            .open(&entry)
            .expect("open");
        f.set_modified(when).expect("set mtime");
    }
}

fn walk(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).expect("read_dir") {
            let e = e.expect("entry");
            let ft = e.file_type().expect("file type");
            if ft.is_dir() {
                stack.push(e.path());
            } else if ft.is_file() {
                out.push(e.path());
            }
        }
    }
    out
}

/// Object headers that matter for parity, as a map.
pub fn headers_of(endpoint: &str, bucket: &str, key: &str) -> BTreeMap<String, String> {
    let h = head(endpoint, bucket, key);
    let mut m = BTreeMap::new();
    let mut put = |k: &str, v: Option<&str>| {
        if let Some(v) = v {
            m.insert(k.to_string(), v.to_string());
        }
    };
    put("content-type", h.content_type());
    put("cache-control", h.cache_control());
    put("content-encoding", h.content_encoding());
    put("content-disposition", h.content_disposition());
    put("content-language", h.content_language());
    put("expires", h.expires_string());
    put("etag", h.e_tag());
    put("website-redirect", h.website_redirect_location());
    if let Some(sc) = h.storage_class() {
        m.insert("storage-class".into(), sc.as_str().to_string());
    }
    if let Some(sse) = h.server_side_encryption() {
        m.insert("sse".into(), sse.as_str().to_string());
    }
    if let Some(meta) = h.metadata() {
        for (k, v) in meta {
            m.insert(format!("meta-{k}"), v.clone());
        }
    }
    m
}

/// aws-cli from the project's virtualenv, aimed at `endpoint` with the fixture keys and nothing
/// else of this machine's AWS set-up (no environment, config or credentials file).
pub fn aws_cli_command(endpoint: &str) -> Command {
    let mut cmd = Command::new(venv_bin().join("aws"));
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("AWS_ACCESS_KEY_ID", ACCESS_KEY)
        .env("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
        .env("AWS_DEFAULT_REGION", "us-east-1")
        .env("AWS_ENDPOINT_URL", endpoint)
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_CONFIG_FILE", "/nonexistent/aws-config")
        .env(
            "AWS_SHARED_CREDENTIALS_FILE",
            "/nonexistent/aws-credentials",
        );
    cmd
}

/// Create a CloudFront distribution on the emulator; returns its ID.
pub fn create_distribution(endpoint: &str) -> String {
    let out = Command::new(venv_bin().join("aws"))
        .args([
            "cloudfront",
            "create-distribution",
            "--origin-domain-name",
            "site.s3.amazonaws.com",
            "--query",
            "Distribution.Id",
            "--output",
            "text",
        ])
        .env("AWS_ACCESS_KEY_ID", ACCESS_KEY)
        .env("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
        .env("AWS_DEFAULT_REGION", "us-east-1")
        .env("AWS_ENDPOINT_URL", endpoint)
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .output()
        .expect("aws cloudfront create-distribution");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// One invalidation as CloudFront (the emulator) holds it.
#[derive(Debug, Clone)]
pub struct Inv {
    pub id: String,
    pub paths: Vec<String>,
}

/// Every invalidation of a distribution.
pub fn invalidations(endpoint: &str, distribution: &str) -> Vec<Inv> {
    let cf = cloudfront(endpoint);
    let list = block_on(cf.list_invalidations().distribution_id(distribution).send())
        .expect("list invalidations");
    let mut out = Vec::new();
    for summary in list
        .invalidation_list()
        .map(|l| l.items())
        .unwrap_or_default()
    {
        let got = block_on(
            cf.get_invalidation()
                .distribution_id(distribution)
                .id(summary.id())
                .send(),
        )
        .expect("get invalidation");
        let inv = got.invalidation().expect("invalidation");
        let batch = inv.invalidation_batch().expect("batch");
        out.push(Inv {
            id: inv.id().to_string(),
            paths: batch
                .paths()
                .map(|p| p.items().to_vec())
                .unwrap_or_default(),
        });
    }
    out
}

/// The text of the first `<tag>…</tag>` in an XML answer (e.g. the credentials STS issued).
pub fn xml_value(xml: &str, tag: &str) -> Option<String> {
    let start = xml.find(&format!("<{tag}>"))? + tag.len() + 2;
    let end = xml[start..].find(&format!("</{tag}>"))? + start;
    Some(xml[start..end].to_string())
}

/// A moto server over HTTPS with a certificate for `localhost` / 127.0.0.1 signed by a private
/// CA made for the test (`openssl`); killed on drop. `ca_pem` is the CA to trust.
pub struct TlsMoto {
    child: Child,
    pub url: String,
    pub ca_pem: PathBuf,
    _dir: tempfile::TempDir,
}

impl TlsMoto {
    pub fn start() -> TlsMoto {
        let dir = tempfile::tempdir().expect("tmp");
        let w = |name: &str| dir.path().join(name).display().to_string();
        let openssl = |args: &[&str]| {
            let out = Command::new("openssl")
                .args(args)
                .output()
                .expect("openssl");
            assert!(
                out.status.success(),
                "openssl {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        let (ca_key, ca, key, csr, cert, ext) = (
            w("ca.key"),
            w("ca.pem"),
            w("tls.key"),
            w("tls.csr"),
            w("tls.pem"),
            w("ext.cnf"),
        );
        openssl(&[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=s3-deploy-pipe test CA",
            "-keyout",
            &ca_key,
            "-out",
            &ca,
        ]);
        openssl(&[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=localhost",
            "-keyout",
            &key,
            "-out",
            &csr,
        ]);
        std::fs::write(
            &ext,
            "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n",
        )
        .expect("ext");
        openssl(&[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            &ca,
            "-CAkey",
            &ca_key,
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            &ext,
            "-out",
            &cert,
        ]);
        let port = free_port();
        let mut child = Command::new(venv_bin().join("python"))
            .arg(project_dir().join("test").join("moto_server.py"))
            .arg(port.to_string())
            .args(["--ssl-cert", &cert, "--ssl-key", &key])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("moto over TLS");
        // Ready when the port accepts connections.
        let start = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Ok(Some(_)) = child.try_wait() {
                panic!("moto over TLS exited");
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "moto over TLS did not start"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        TlsMoto {
            child,
            url: format!("https://localhost:{port}"),
            ca_pem: PathBuf::from(ca),
            _dir: dir,
        }
    }
}

impl Drop for TlsMoto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// How to run the pipe as a user who cannot read a mode-000 file or folder. CI runs as root,
/// where permissions stop nothing, so there the pipe runs as `nobody` (uid/gid 65534) through
/// `setpriv` (util-linux) or, failing that, `runuser`.
#[derive(Debug, Clone)]
pub enum Unprivileged {
    /// This process is not root: run the pipe directly.
    AlreadyUnprivileged,
    /// Prefix the pipe's command line with these words.
    Via(Vec<String>),
}

/// The way to run as an unprivileged user here, or why there is none (the test then skips,
/// saying so).
pub fn unprivileged() -> Result<Unprivileged, String> {
    let uid = Command::new("id")
        .arg("-u")
        .output()
        .map_err(|e| format!("id -u: {e}"))?;
    if String::from_utf8_lossy(&uid.stdout).trim() != "0" {
        return Ok(Unprivileged::AlreadyUnprivileged);
    }
    let candidates: [Vec<&str>; 2] = [
        vec![
            "setpriv",
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--",
        ],
        vec!["runuser", "-u", "nobody", "--"],
    ];
    for words in candidates {
        let works = Command::new(words[0])
            .args(&words[1..])
            .arg("true")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if works {
            return Ok(Unprivileged::Via(
                words.iter().map(|w| w.to_string()).collect(),
            ));
        }
    }
    Err("running as root, and neither `setpriv` nor `runuser` can switch to uid 65534".into())
}

/// Run the pipe as an unprivileged user (see [`unprivileged`]), from `/`. `readable` (a
/// temporary folder, created 0700) is opened to everyone; the folders a test creates in it are
/// 0755 already, so only what the test locks is unreadable.
pub fn run_pipe_unprivileged(how: &Unprivileged, vars: &[(&str, &str)], readable: &Path) -> Run {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(readable)
        .expect("stat")
        .permissions()
        .mode();
    std::fs::set_permissions(readable, std::fs::Permissions::from_mode(mode | 0o755))
        .expect("chmod");
    let base = pipe_command(vars, Some(Path::new("/")));
    let bin = world_runnable_binary();
    let mut cmd = match how {
        Unprivileged::AlreadyUnprivileged => base,
        Unprivileged::Via(words) => {
            let mut c = Command::new(&words[0]);
            c.args(&words[1..]).arg(&bin.1).args(base.get_args());
            c.env_clear();
            for (k, v) in base.get_envs() {
                if let Some(v) = v {
                    c.env(k, v);
                }
            }
            c.current_dir("/").stdin(Stdio::null());
            c
        }
    };
    let out = cmd.output().expect("run pipe unprivileged");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// The pipe binary where any user can run it (returned with the folder that holds it, which
/// removes it when dropped): the build folder may lie below a home folder other users cannot
/// enter (CI's clone of the repository, for one). A hard link where it can (the debug binary
/// is hundreds of MB), else a copy.
fn world_runnable_binary() -> (tempfile::TempDir, PathBuf) {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::Builder::new()
        .prefix("s3-deploy-pipe-bin")
        .tempdir()
        .expect("tmp");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let bin = dir.path().join("s3-deploy-pipe");
    let original = env!("CARGO_BIN_EXE_s3-deploy-pipe");
    if std::fs::hard_link(original, &bin).is_err() {
        std::fs::copy(original, &bin).expect("copy the binary");
    }
    (dir, bin)
}
