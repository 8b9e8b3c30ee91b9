#!/usr/bin/env bash
# The supply chain, checked the same way in CI and on a developer machine (run by .ci/run):
#
# 1. Installs the pinned tools from crates.io when missing: cargo-deny, cargo-auditable,
#    cargo-cyclonedx (versions below; `cargo install --locked`). `test/supply-chain.sh --tools`
#    does only this (.ci/run starts it in the background while clippy and the tests run).
# 2. `cargo deny check licenses bans sources` against deny.toml: permissive licenses only, one
#    version of each crate unless deny.toml says why, crates from crates.io only. No advisory
#    database is fetched (that would need GitHub); nothing else needs the network.
# 3. Writes the SBOMs (CycloneDX 1.5 JSON), one per platform of the image, to target/sbom/, and
#    checks that each names the pipe and the versions of Cargo.lock.
#
# test/image.sh then builds the binaries with `cargo auditable` (the dependency list embedded
# in the binary) and puts the SBOM in the image beside the binary.
set -euo pipefail
cd "$(dirname "$0")/.."

readonly DENY_VERSION=0.20.2
readonly AUDITABLE_VERSION=0.7.7
readonly CYCLONEDX_VERSION=0.5.9

fail() {
  echo "FAIL: test/supply-chain.sh: $*" >&2
  exit 1
}

# The tools run on this machine and are never shipped, and how they are optimised does not show
# in what they produce: a binary built by a cargo-auditable compiled with this profile is byte
# for byte the one a cargo-auditable compiled with its own profile builds (checked on a small
# crate, with the tool at the same path). So they are built for a short build: no LTO, 16
# codegen units, opt-level 1, where their own release profiles ask for fat LTO and one codegen
# unit (cargo-deny) or thin LTO (cargo-cyclonedx); and in one target folder, so that the
# dependencies they have in common can be built once (cargo-deny's `strip = "symbols"` still
# keeps its dependencies apart from the other two's). None of the three has a cargo feature to
# leave out. Measured side by side from fresh CARGO_HOMEs on 2 shared cores (nice 10, load
# 10-23): cargo-deny took 1,270 s instead of 2,315 s; cargo-deny and cargo-auditable together
# used 186 s of CPU instead of 265 s.
readonly TOOL_PROFILE=(CARGO_PROFILE_RELEASE_LTO=off CARGO_PROFILE_RELEASE_CODEGEN_UNITS=16
  CARGO_PROFILE_RELEASE_OPT_LEVEL=1 CARGO_PROFILE_RELEASE_DEBUG=false)
tools_dir=""
trap '[ -z "$tools_dir" ] || rm -rf "$tools_dir"' EXIT
installed() { # CRATE VERSION: is that version of CRATE installed by cargo install?
  grep -qF "\"$1 $2 " "${CARGO_HOME:-$HOME/.cargo}/.crates.toml" 2>/dev/null
}
install() { # CRATE VERSION
  installed "$1" "$2" && return 0
  echo "::: supply chain: cargo install --locked $1@$2"
  [ -n "$tools_dir" ] || tools_dir=$(mktemp -d)
  env "${TOOL_PROFILE[@]}" timeout 3600 cargo install --quiet --locked --target-dir "$tools_dir" "$1@$2" ||
    fail "could not install $1 $2 from crates.io"
}
install cargo-deny "$DENY_VERSION"
install cargo-auditable "$AUDITABLE_VERSION"
install cargo-cyclonedx "$CYCLONEDX_VERSION"
if [ -n "$tools_dir" ]; then rm -rf "$tools_dir"; fi
[ "${1:-}" != --tools ] || exit 0

echo "::: supply chain: cargo deny check licenses bans sources"
cargo deny --log-level warn check licenses bans sources

version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
mkdir -p target/sbom
for target in x86_64-unknown-linux-gnu aarch64-unknown-linux-gnu; do
  case "$target" in x86_64*) arch=amd64 ;; *) arch=arm64 ;; esac
  out=target/sbom/s3-deploy-pipe-$version-linux-$arch.cdx.json
  echo "::: supply chain: SBOM for linux/$arch → $out"
  # A fixed creation time: the same commit gives the same file.
  SOURCE_DATE_EPOCH=$(git log -1 --format=%ct 2>/dev/null || echo 0) \
    cargo cyclonedx --quiet --format json --spec-version 1.5 --describe binaries --target "$target"
  mv s3-deploy-pipe_bin.cdx.json "$out" || fail "cargo cyclonedx wrote no SBOM for $target"
  python3 - "$out" "$version" <<'PY' || fail "the SBOM $out does not match Cargo.lock"
import json, sys, tomllib
bom = json.load(open(sys.argv[1]))
assert bom["bomFormat"] == "CycloneDX", bom["bomFormat"]
top = bom["metadata"]["component"]
assert (top["name"], top["version"]) == ("s3-deploy-pipe", sys.argv[2]), top
have = {(c["name"], c["version"]) for c in bom["components"]}
lock = {(p["name"], p["version"]) for p in tomllib.load(open("Cargo.lock", "rb"))["package"]}
for name in ("aws-sdk-s3", "aws-sdk-sts", "aws-sdk-cloudfront", "rustls", "tokio"):
    want = {v for (n, v) in lock if n == name}
    got = {v for (n, v) in have if n == name}
    assert got and got <= want, f"{name}: SBOM {got}, Cargo.lock {want}"
assert have <= lock, f"not in Cargo.lock: {sorted(have - lock)[:5]}"
print(f"{sys.argv[1]}: {len(have)} components, all from Cargo.lock")
PY
done
echo "✔ test/supply-chain.sh: dependency policy holds; SBOMs in target/sbom/"
