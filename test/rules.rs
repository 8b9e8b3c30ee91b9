//! Per-pattern header rules and precompression (gzip, brotli), against moto.

use std::io::Read;

use crate::support::proxy::{Proxy, Recorded};
use crate::support::*;

const SPA_RULES: &str = r#"
- pattern: "*.html"
  cache_control: "no-cache"
- pattern: "sw.js"
  cache_control: "no-cache"
- pattern: "assets/*"
  cache_control: "public, max-age=31536000, immutable"
  compress: br
- pattern: "*.json"
  compress: gzip
  metadata:
    team: web
- pattern: "*.wasm"
  content_type: "application/wasm"
"#;

fn css() -> Vec<u8> {
    (0..400)
        .flat_map(|i| format!(".c{i} {{ color: #{i:03x}; margin: 0 auto; }}\n").into_bytes())
        .collect()
}

fn json() -> Vec<u8> {
    let items: Vec<String> = (0..300)
        .map(|i| format!("{{\"id\":{i},\"name\":\"item {i}\"}}"))
        .collect();
    format!("[{}]", items.join(",")).into_bytes()
}

fn spa() -> tempfile::TempDir {
    site(&[
        ("index.html", b"<!doctype html><title>spa</title>"),
        ("about/index.html", b"<p>about</p>"),
        ("sw.js", b"self.addEventListener('fetch', () => {});"),
        ("assets/app.3f2a.css", &css()),
        ("assets/tiny.js", b"x=1"),
        ("data/items.json", &json()),
        ("robots.txt", b"User-agent: *"),
        ("app.wasm", b"\0asm\x01\0\0\0"),
    ])
}

struct Fixture {
    moto: Moto,
    proxy: Proxy,
    dir: tempfile::TempDir,
}

impl Fixture {
    fn new() -> Self {
        let moto = Moto::start();
        let proxy = Proxy::start(&moto.url());
        create_bucket(&moto.url(), "spa");
        Fixture {
            moto,
            proxy,
            dir: spa(),
        }
    }
    fn run(&self, rules: &str) -> Run {
        let mut vars = key_vars(&self.proxy.url());
        vars.extend([
            ("S3_BUCKET", "spa".to_string()),
            ("LOCAL_PATH", self.dir.path().display().to_string()),
            ("CACHE_CONTROL", "max-age=300".to_string()),
            ("RULES", rules.to_string()),
        ]);
        run_pipe(&as_refs(&vars))
    }
    fn h(&self, key: &str) -> std::collections::BTreeMap<String, String> {
        headers_of(&self.moto.url(), "spa", key)
    }
    fn count(&self, pred: impl Fn(&Recorded) -> bool) -> usize {
        self.proxy.requests().iter().filter(|r| pred(r)).count()
    }
}

#[test]
fn each_file_gets_the_headers_of_the_first_matching_rule() {
    let f = Fixture::new();
    f.run(SPA_RULES)
        .assert_code(0)
        .assert_contains("compression saved");
    let h = f.h("index.html");
    assert_eq!(h["cache-control"], "no-cache");
    assert_eq!(h["content-type"], "text/html");
    assert_eq!(f.h("about/index.html")["cache-control"], "no-cache");
    assert_eq!(f.h("sw.js")["cache-control"], "no-cache");
    let css = f.h("assets/app.3f2a.css");
    assert_eq!(css["cache-control"], "public, max-age=31536000, immutable");
    assert_eq!(
        css["content-type"], "text/css",
        "the original file's type is kept"
    );
    assert_eq!(css["content-encoding"], "br");
    let json = f.h("data/items.json");
    assert_eq!(json["content-encoding"], "gzip");
    assert_eq!(
        json["cache-control"], "max-age=300",
        "fall back to CACHE_CONTROL"
    );
    assert_eq!(json["meta-team"], "web");
    assert_eq!(f.h("app.wasm")["content-type"], "application/wasm");
    let robots = f.h("robots.txt");
    assert_eq!(
        robots["cache-control"], "max-age=300",
        "no rule: the global settings"
    );
    assert!(!robots.contains_key("content-encoding"));
    // Below the size threshold: matched a compress rule, but uploaded as is.
    let tiny = f.h("assets/tiny.js");
    assert!(!tiny.contains_key("content-encoding"), "{tiny:?}");
    assert_eq!(get(&f.moto.url(), "spa", "assets/tiny.js"), b"x=1");
}

#[test]
fn compressed_objects_decompress_to_the_original_bytes() {
    let f = Fixture::new();
    f.run(SPA_RULES).assert_code(0);
    let br = get(&f.moto.url(), "spa", "assets/app.3f2a.css");
    assert!(br.len() < css().len() / 3);
    let mut out = Vec::new();
    brotli::Decompressor::new(br.as_slice(), 4096)
        .read_to_end(&mut out)
        .expect("brotli");
    assert_eq!(out, css());
    let gz = get(&f.moto.url(), "spa", "data/items.json");
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(gz.as_slice())
        .read_to_end(&mut out)
        .expect("gzip");
    assert_eq!(out, json());
    let listed = list(&f.moto.url(), "spa");
    let o = listed
        .iter()
        .find(|o| o.key == "data/items.json")
        .expect("listed");
    assert_eq!(
        o.size as usize,
        gz.len(),
        "the listed size is the compressed size"
    );
}

#[test]
fn an_unchanged_tree_resyncs_with_zero_puts_with_compression_on() {
    let f = Fixture::new();
    f.run(SPA_RULES).assert_code(0);
    touch_all(f.dir.path(), 10);
    f.proxy.clear_requests();
    f.run(SPA_RULES)
        .assert_code(0)
        .assert_contains("0 uploaded");
    assert_eq!(
        f.count(|r| r.is_put_object() || r.is_upload_part() || r.is_copy_object()),
        0
    );
}

#[test]
fn changing_a_rule_reapplies_headers_to_that_rules_unchanged_objects_only() {
    let f = Fixture::new();
    f.run(SPA_RULES).assert_code(0);
    let etag_before = f.h("index.html")["etag"].clone();
    f.proxy.clear_requests();
    let changed = SPA_RULES.replacen(
        "cache_control: \"no-cache\"",
        "cache_control: \"no-cache, must-revalidate\"",
        1,
    );
    f.run(&changed)
        .assert_code(0)
        .assert_contains("re-applying headers to 2 unchanged object(s)");
    assert_eq!(
        f.count(|r| r.is_put_object() || r.is_upload_part()),
        0,
        "no bytes re-uploaded"
    );
    let copies: Vec<String> = f
        .proxy
        .requests()
        .iter()
        .filter(|r| r.is_copy_object())
        .filter_map(|r| r.s3_key())
        .collect();
    let mut copies = copies;
    copies.sort();
    assert_eq!(copies, vec!["about/index.html", "index.html"]);
    let h = f.h("index.html");
    assert_eq!(h["cache-control"], "no-cache, must-revalidate");
    assert_eq!(h["etag"], etag_before);
    assert_eq!(h["content-type"], "text/html");
    // Compressed objects keep their encoding through a re-header too.
    let with_new_asset_cache =
        SPA_RULES.replace("immutable", "immutable, stale-while-revalidate=60");
    f.run(&with_new_asset_cache).assert_code(0);
    let css = f.h("assets/app.3f2a.css");
    assert_eq!(css["content-encoding"], "br");
    assert_eq!(
        css["cache-control"],
        "public, max-age=31536000, immutable, stale-while-revalidate=60"
    );
}

#[test]
fn rules_from_a_file_in_the_repository() {
    let f = Fixture::new();
    let rules_file = f.dir.path().join("deploy-rules.yml");
    std::fs::write(
        &rules_file,
        "- pattern: '*.txt'\n  cache_control: 'max-age=1'\n",
    )
    .expect("write");
    let mut vars = key_vars(&f.proxy.url());
    vars.extend([
        ("S3_BUCKET", "spa".to_string()),
        ("LOCAL_PATH", f.dir.path().display().to_string()),
        ("RULES_FILE", rules_file.display().to_string()),
    ]);
    run_pipe(&as_refs(&vars)).assert_code(0);
    assert_eq!(f.h("robots.txt")["cache-control"], "max-age=1");
}

#[test]
fn invalid_rules_are_refused_naming_the_rule() {
    let f = Fixture::new();
    let cases = [
        (
            "- pattern: '*.css'\n- pattern: '*.js'\n  cache: no-cache\n",
            "rule 2: unknown field `cache`",
        ),
        (
            "- pattern: '*.css'\n  compress: zip\n",
            "rule 1: compress \"zip\" is not gzip or br",
        ),
        ("- cache_control: no-cache\n", "rule 1 has no pattern"),
        (
            "- pattern: '*.css'\n  acl: everyone\n",
            "rule 1: acl \"everyone\"",
        ),
        (
            "- pattern: '*.css'\n  compress: gzip\n  content_encoding: gzip\n",
            "rule 1 sets both compress and content_encoding",
        ),
        ("pattern: '*.css'\n", "is not a YAML list of rules"),
    ];
    for (rules, want) in cases {
        f.run(rules)
            .assert_code(2)
            .assert_contains("✖ RULES: ")
            .assert_contains(want);
    }
    assert!(
        f.proxy.requests().is_empty(),
        "nothing is requested on bad rules"
    );
    let mut vars = key_vars(&f.proxy.url());
    vars.extend([
        ("S3_BUCKET", "spa".to_string()),
        ("LOCAL_PATH", f.dir.path().display().to_string()),
        ("RULES_FILE", "no/such/rules.yml".to_string()),
    ]);
    run_pipe(&as_refs(&vars))
        .assert_code(2)
        .assert_contains("✖ RULES_FILE:");
}
