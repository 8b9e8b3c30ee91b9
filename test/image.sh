#!/usr/bin/env bash
# The container image, proven the way Bitbucket uses it.
#
# 1. Builds the static release binary (glibc, crt-static, non-PIE) for x86_64-unknown-linux-gnu
#    and, cross-compiled with Debian's aarch64 toolchain, for aarch64-unknown-linux-gnu, in one
#    cargo invocation (so that the two builds share the build scripts and fill both cores
#    while each target's single-codegen-unit crates compile): an explicit --target keeps these
#    RUSTFLAGS out of the host build cache.
# 2. Packages each with buildah (Dockerfile target `from-binary`: no registry is needed) as
#    linux/amd64 and linux/arm64 images, joined in one multi-arch manifest list, and checks
#    each: its architecture, at most 12 MB, entrypoint, no WORKDIR, OCI labels.
# 3. Runs the image with podman as Bitbucket runs a pipe (clone dir mounted and made the cwd,
#    relative LOCAL_PATH) against moto on this machine:
#    a. a deploy through the OIDC path to http://localhost:PORT (/etc/hosts in the container);
#    b. a re-deploy to a name only a DNS server knows (/etc/resolv.conf in the container);
#    c. HTTPS: with the image's own CA bundle a server signed by a throwaway CA is refused,
#       and the bundle is loaded without errors; with that CA given through SSL_CERT_FILE,
#       the deploy goes through over TLS.
# 4. Runs the arm64 binary under user-mode emulation (qemu-aarch64-static runs a static binary
#    directly, no binfmt registration) for a real deploy against moto: an upload, a re-deploy
#    that uploads nothing, an invalidation.
#
# `test/image.sh --prepare` only installs the tools (apt packages, the arm64 Rust target); .ci/run
# starts it in the background while clippy and the tests run.
#
# Skips, saying so, only when buildah or podman cannot be installed or cannot run at all, or
# when S3_DEPLOY_PIPE_IMAGE_TEST=skip (for CI containers that cannot start containers). Any
# other problem fails. Idempotent: the image tag is rebuilt, servers and temp files are removed.
set -euo pipefail
cd "$(dirname "$0")/.."

readonly TARGET=x86_64-unknown-linux-gnu
readonly BINARY="target/$TARGET/release/s3-deploy-pipe"
readonly ARM_TARGET=aarch64-unknown-linux-gnu
readonly ARM_BINARY="target/$ARM_TARGET/release/s3-deploy-pipe"
# The same flags as the Dockerfile. Non-PIE: `file` says "statically linked" (static PIE would
# say "static-pie linked") and the binary is 0.7 MB smaller, without ASLR for its own code.
readonly STATIC_RUSTFLAGS="-C target-feature=+crt-static -C relocation-model=static"
readonly IMAGE=localhost/s3-deploy-pipe:ci           # linux/amd64, run below with podman
readonly ARM_IMAGE=localhost/s3-deploy-pipe:ci-arm64 # linux/arm64
readonly MULTI=localhost/s3-deploy-pipe:ci-multi     # the manifest list of both
readonly MAX_IMAGE_BYTES=12000000 # 12 MB, uncompressed
readonly DNS_ADDR=127.0.0.153      # a loopback address of its own for the test DNS server
readonly DNS_NAME=moto.s3-deploy-pipe.test

skip() {
  echo "SKIP: test/image.sh: $*" >&2
  exit 0
}
fail() {
  echo "FAIL: test/image.sh: $*" >&2
  exit 1
}
step() { echo "::: image: $*"; }

if [ "${S3_DEPLOY_PIPE_IMAGE_TEST:-}" = skip ]; then
  skip "S3_DEPLOY_PIPE_IMAGE_TEST=skip is set: the image is not built or run here"
fi

# ---- tools ----
need=()
for tool in buildah podman runc file; do
  command -v "$tool" >/dev/null || need+=("$tool")
done
# The arm64 cross toolchain and the emulator that runs its binary. Unlike buildah and podman,
# these need no privileges: when they cannot be installed, the test fails.
command -v aarch64-linux-gnu-gcc >/dev/null || need+=(gcc-aarch64-linux-gnu)
[ -f /usr/aarch64-linux-gnu/lib/libc.a ] || need+=(libc6-dev-arm64-cross)
command -v qemu-aarch64-static >/dev/null || need+=(qemu-user-static)
[ -f /etc/ssl/certs/ca-certificates.crt ] || need+=(ca-certificates)
if [ ${#need[@]} -gt 0 ]; then
  step "installing ${need[*]}"
  if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
    skip "${need[*]} missing and cannot be installed here (needs root and apt-get)"
  fi
  export DEBIAN_FRONTEND=noninteractive
  if ! { timeout 600 apt-get update -qq && timeout 900 apt-get install -y -qq "${need[@]}" >/dev/null; }; then
    skip "could not install ${need[*]} with apt-get"
  fi
fi
if ! rustup target list --installed | grep -qx "$ARM_TARGET"; then
  step "rustup target add $ARM_TARGET"
  timeout 600 rustup target add "$ARM_TARGET" || fail "rustup could not add $ARM_TARGET (the Rust standard library for arm64)"
fi
[ "${1:-}" != --prepare ] || exit 0
buildah=(buildah --storage-driver vfs)
podman=(podman --storage-driver vfs)
if ! "${buildah[@]}" info >/dev/null 2>&1; then
  skip "buildah cannot run on this machine: $("${buildah[@]}" info 2>&1 | tail -1)"
fi

test/setup # moto and awscli in .venv

# ---- 1. the static binaries ----
for tool in aarch64-linux-gnu-gcc qemu-aarch64-static; do
  command -v "$tool" >/dev/null || fail "$tool is missing: apt-get install gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user-static"
done
# Debian's cross compiler links the arm64 binary and builds aws-lc's C code for it.
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc \
  CC_aarch64_unknown_linux_gnu=aarch64-linux-gnu-gcc \
  CXX_aarch64_unknown_linux_gnu=aarch64-linux-gnu-g++ \
  AR_aarch64_unknown_linux_gnu=aarch64-linux-gnu-ar
# The dependency policy, the pinned tools (cargo-auditable among them) and the SBOMs.
test/supply-chain.sh
version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
step "cargo auditable build --release --target $TARGET --target $ARM_TARGET ($STATIC_RUSTFLAGS)"
start=$SECONDS
RUSTFLAGS="$STATIC_RUSTFLAGS" timeout 2400 \
  cargo auditable build --release --locked --target "$TARGET" --target "$ARM_TARGET" --bin s3-deploy-pipe
echo "release builds: $((SECONDS - start)) s"
check_static() { # TARGET BINARY MACHINE (as `file` names it) OBJCOPY
  local kind
  kind=$(file -b "$2")
  echo "file: $kind"
  case "$kind" in
  *"$3"*"statically linked"*) ;;
  *) fail "$2 is not a statically linked $3 executable: $kind" ;;
  esac
  if readelf -lW "$2" | grep -q 'INTERP' || readelf -dW "$2" | grep -q '(NEEDED)'; then
    fail "$2 has a program interpreter or needs shared libraries"
  fi
  echo "binary: $(stat -c %s "$2") bytes"
  # The dependency list cargo-auditable embeds (section .dep-v0, zlib-compressed JSON), read
  # back the way scanners (syft, trivy, cargo audit bin) read it, and compared with Cargo.lock.
  local deps
  deps=$(mktemp)
  "$4" --dump-section .dep-v0="$deps" "$2" /dev/null 2>/dev/null ||
    fail "$2 has no embedded dependency list (.dep-v0): was it built with cargo auditable?"
  python3 - "$deps" "$version" <<'PY' || fail "the dependency list embedded in $2 does not match Cargo.lock"
import json, sys, tomllib, zlib
embedded = json.loads(zlib.decompress(open(sys.argv[1], "rb").read()))
have = {(p["name"], p["version"]) for p in embedded["packages"]}
roots = [(p["name"], p["version"]) for p in embedded["packages"] if p.get("root")]
assert roots == [("s3-deploy-pipe", sys.argv[2])], roots
lock = {(p["name"], p["version"]) for p in tomllib.load(open("Cargo.lock", "rb"))["package"]}
assert have <= lock, f"not in Cargo.lock: {sorted(have - lock)[:5]}"
for name in ("aws-sdk-s3", "aws-sdk-sts", "aws-sdk-cloudfront", "rustls", "tokio"):
    assert any(n == name for (n, _) in have), f"{name} is missing"
print(f"embedded dependency list: {len(have)} crates, all from Cargo.lock")
PY
  rm -f "$deps"
}
check_static "$TARGET" "$BINARY" x86-64 objcopy
check_static "$ARM_TARGET" "$ARM_BINARY" "ARM aarch64" aarch64-linux-gnu-objcopy

# ---- 2. the images: one per platform, and the manifest list ----
cp /etc/ssl/certs/ca-certificates.crt target/ca-certificates.crt
# FROM scratch with COPY only: building the arm64 image runs nothing, so needs no emulation.
build_image() { # TAG PLATFORM BINARY
  step "buildah bud --target from-binary --platform $2"
  local sbom="target/sbom/s3-deploy-pipe-$version-${2/\//-}.cdx.json"
  "${podman[@]}" image rm -f "$1" >/dev/null 2>&1 || true
  timeout 600 "${buildah[@]}" bud --isolation chroot --quiet --target from-binary --platform "$2" \
    --build-arg BINARY="$3" --build-arg CA_BUNDLE=target/ca-certificates.crt \
    --build-arg SBOM="$sbom" -t "$1" . >/dev/null
  local size arch
  inspect() { "${podman[@]}" image inspect --format "$1" "$TAG"; }
  TAG=$1
  size=$(inspect '{{.Size}}')
  echo "image $1 ($2): $size bytes uncompressed (limit $MAX_IMAGE_BYTES)"
  [ "$size" -le "$MAX_IMAGE_BYTES" ] || fail "the $2 image is $size bytes, over $MAX_IMAGE_BYTES"
  arch="$(inspect '{{.Os}}')/$(inspect '{{.Architecture}}')"
  [ "$arch" = "$2" ] || fail "the $2 image says it is $arch"
  [ "$(inspect '{{json .Config.Entrypoint}}')" = '["/s3-deploy-pipe"]' ] ||
    fail "entrypoint is $(inspect '{{json .Config.Entrypoint}}')"
  case "$(inspect '{{.Config.WorkingDir}}')" in
  "" | /) ;;
  *) fail "the image sets WORKDIR $(inspect '{{.Config.WorkingDir}}'): Bitbucket's -w must decide the cwd" ;;
  esac
  for label in source version licenses description; do
    value=$(inspect "{{index .Config.Labels \"org.opencontainers.image.$label\"}}")
    [ -n "$value" ] || fail "label org.opencontainers.image.$label is missing"
  done
  [ "$(inspect '{{index .Config.Labels "org.opencontainers.image.version"}}')" = "$version" ] ||
    fail "label org.opencontainers.image.version is not $version"
  # The layers hold exactly the binary for this platform and the CA bundle.
  local mnt
  mnt=$("${podman[@]}" image mount "$1") || fail "cannot mount $1 to check what it holds"
  cmp -s "$mnt/s3-deploy-pipe" "$3" || fail "the $2 image does not hold $3"
  cmp -s "$mnt/etc/ssl/certs/ca-certificates.crt" target/ca-certificates.crt ||
    fail "the $2 image does not hold the CA bundle"
  cmp -s "$mnt/sbom.cdx.json" "$sbom" || fail "the $2 image does not hold its SBOM ($sbom) at /sbom.cdx.json"
  "${podman[@]}" image unmount "$1" >/dev/null
  size_of["$2"]=$size
}
declare -A size_of
build_image "$IMAGE" linux/amd64 "$BINARY"
build_image "$ARM_IMAGE" linux/arm64 "$ARM_BINARY"
size=${size_of[linux/amd64]}
step "buildah manifest create $MULTI (linux/amd64 + linux/arm64)"
"${buildah[@]}" manifest rm "$MULTI" >/dev/null 2>&1 || true
"${buildah[@]}" manifest create "$MULTI" >/dev/null
"${buildah[@]}" manifest add "$MULTI" "containers-storage:$IMAGE" >/dev/null
"${buildah[@]}" manifest add "$MULTI" "containers-storage:$ARM_IMAGE" >/dev/null
platforms=$("${buildah[@]}" manifest inspect "$MULTI" |
  python3 -c 'import json,sys; print(" ".join(sorted(m["platform"]["os"]+"/"+m["platform"]["architecture"] for m in json.load(sys.stdin)["manifests"])))')
echo "manifest list $MULTI: $platforms"
[ "$platforms" = "linux/amd64 linux/arm64" ] || fail "the manifest list holds '$platforms', not linux/amd64 linux/arm64"
"${podman[@]}" image prune -f >/dev/null 2>&1 || true

# ---- 3. run it ----
work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
wait_for() { # URL [CA]
  for _ in $(seq 150); do
    python3 - "$@" <<'PY' && return 0
import ssl, sys, urllib.request
ctx = ssl.create_default_context(cafile=sys.argv[2]) if len(sys.argv) > 2 else None
try:
    urllib.request.urlopen(sys.argv[1] + "/moto-api/", timeout=1, context=ctx)
except Exception:
    sys.exit(1)
PY
    sleep 0.2
  done
  fail "no server at $1"
}

port=$(free_port)
# Path-style requests only: moto would otherwise read a bucket name from a host name such as
# moto.s3-deploy-pipe.test (scenario b).
S3_IGNORE_SUBDOMAIN_BUCKETNAME=true .venv/bin/python test/moto_server.py "$port" >"$work/moto.log" 2>&1 &
pids+=($!)
wait_for "http://127.0.0.1:$port"

export AWS_DEFAULT_REGION=us-east-1 AWS_EC2_METADATA_DISABLED=true
aws() { env AWS_ACCESS_KEY_ID=ci AWS_SECRET_ACCESS_KEY=ci .venv/bin/aws --endpoint-url "$endpoint" "$@"; }
endpoint="http://127.0.0.1:$port"
aws s3 mb s3://image-site >/dev/null
distribution=$(aws cloudfront create-distribution \
  --origin-domain-name image-site.s3.amazonaws.com --query Distribution.Id --output text)

# A made-up Bitbucket step token: moto's STS accepts any JWT.
token=$(python3 - <<'PY'
import base64, json, time
b = lambda d: base64.urlsafe_b64encode(json.dumps(d).encode()).rstrip(b"=").decode()
print(".".join([b({"alg": "RS256", "typ": "JWT"}),
                b({"iss": "https://api.bitbucket.org/2.0/workspaces/ci/pipelines-config/identity/oidc",
                   "aud": "ari:cloud:bitbucket::workspace/ci", "sub": "{repo}:{step}",
                   "exp": int(time.time()) + 3600}),
                "c2lnbmF0dXJl"]))
PY
)

# The pipe in the image, as Bitbucket starts it: the clone mounted at the same path and made
# the cwd, so LOCAL_PATH=examples/site is relative. Extra podman options come first, then --.
run_image() {
  local opts=()
  while [ "$1" != -- ]; do opts+=("$1"); shift; done
  shift
  local envs=(-e AWS_DEFAULT_REGION=us-east-1 -e AWS_EC2_METADATA_DISABLED=true
    -e BITBUCKET_STEP_OIDC_TOKEN="$token" -e AWS_OIDC_ROLE_ARN=arn:aws:iam::123456789012:role/image-deploy
    -e BITBUCKET_REPO_SLUG=image -e BITBUCKET_BUILD_NUMBER=1
    -e LOCAL_PATH=examples/site -e S3_FORCE_PATH_STYLE=true -e NO_COLOR=1)
  for kv in "$@"; do envs+=(-e "$kv"); done
  timeout 300 "${podman[@]}" run --rm --runtime runc \
    --ulimit nofile=1024:1024 --ulimit nproc=1024:1024 --network host \
    -v "$PWD:$PWD" -w "$PWD" "${opts[@]}" "${envs[@]}" "$IMAGE"
}
files=$(find examples/site -type f | wc -l)
# The site's objects: the pipe's own release state under .s3-deploy-pipe/ is not one of them.
objects() { aws s3 ls --recursive "s3://$1" | grep -vc ' \.s3-deploy-pipe/' || true; }
released() { aws s3 ls "s3://$1/.s3-deploy-pipe/state.json" >/dev/null 2>&1; }

step "a. deploy examples/site to http://localhost:$port from inside the container"
code=0
# RELEASE_HISTORY: the release state is written on a bucket without versioning only when asked
# (#26), and the deploy in the container must be able to write it.
run_image -- AWS_ENDPOINT_URL="http://localhost:$port" S3_BUCKET=image-site \
  DISTRIBUTION_ID="$distribution" DELETE_FLAG=true RELEASE_HISTORY=20 >"$work/a.log" 2>&1 || code=$?
cat "$work/a.log"
[ "$code" = 0 ] || fail "the deploy in the container exited $code"
aws s3 ls --recursive s3://image-site
[ "$(objects image-site)" = "$files" ] || fail "expected $files objects in s3://image-site, found $(objects image-site)"
released image-site || fail "the deploy in the container recorded no release (s3://image-site/.s3-deploy-pipe/state.json)"
aws cloudfront list-invalidations --distribution-id "$distribution" --query 'length(InvalidationList.Items)' --output text |
  grep -qx '[1-9][0-9]*' || fail "no CloudFront invalidation was created"

step "b. re-deploy to http://$DNS_NAME:$port, a name only the container's resolv.conf can resolve"
# A minimal DNS server: A records for *.test point at 127.0.0.1, anything else is NXDOMAIN.
cat >"$work/dns.py" <<'PY'
import socket, struct, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind((sys.argv[1], 53))
while True:
    q, peer = s.recvfrom(512)
    i = 12
    while q[i]:
        i += 1 + q[i]
    qtype = struct.unpack(">H", q[i + 1:i + 3])[0]
    labels, j = [], 12
    while q[j]:
        labels.append(q[j + 1:j + 1 + q[j]].decode("ascii", "replace")); j += 1 + q[j]
    name = ".".join(labels).lower()
    ours = name.endswith(".test")
    answer = b""
    if ours and qtype == 1:
        answer = b"\xc0\x0c" + struct.pack(">HHIH", 1, 1, 5, 4) + socket.inet_aton("127.0.0.1")
    flags = 0x8180 if ours else 0x8183
    s.sendto(q[:2] + struct.pack(">HHHHH", flags, 1, 1 if answer else 0, 0, 0) + q[12:i + 5] + answer, peer)
    print("query", name, qtype, flush=True)
PY
python3 "$work/dns.py" "$DNS_ADDR" >"$work/dns.log" 2>&1 &
pids+=($!)
sleep 0.5
kill -0 "${pids[-1]}" 2>/dev/null || fail "the test DNS server did not start: $(cat "$work/dns.log")"
echo "nameserver $DNS_ADDR" >"$work/resolv.conf"
code=0
run_image -v "$work/resolv.conf:/etc/resolv.conf:ro" -- \
  AWS_ENDPOINT_URL="http://$DNS_NAME:$port" S3_BUCKET=image-site >"$work/b.log" 2>&1 || code=$?
cat "$work/b.log"
[ "$code" = 0 ] || fail "the re-deploy through DNS exited $code"
grep -q "query $DNS_NAME 1" "$work/dns.log" || fail "the container never asked the DNS server for $DNS_NAME"

step "c. HTTPS: the image's CA bundle, and a private CA through SSL_CERT_FILE"
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=s3-deploy-pipe test CA" \
  -keyout "$work/ca.key" -out "$work/ca.pem" 2>/dev/null
openssl req -newkey rsa:2048 -nodes -subj "/CN=localhost" \
  -keyout "$work/tls.key" -out "$work/tls.csr" 2>/dev/null
printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n' >"$work/ext.cnf"
openssl x509 -req -in "$work/tls.csr" -CA "$work/ca.pem" -CAkey "$work/ca.key" -CAcreateserial \
  -days 2 -extfile "$work/ext.cnf" -out "$work/tls.pem" 2>/dev/null
tport=$(free_port)
.venv/bin/python test/moto_server.py "$tport" --ssl-cert "$work/tls.pem" --ssl-key "$work/tls.key" \
  >"$work/moto-tls.log" 2>&1 &
pids+=($!)
wait_for "https://localhost:$tport" "$work/ca.pem"
endpoint="https://localhost:$tport"
export AWS_CA_BUNDLE="$work/ca.pem"
aws s3 mb s3://image-tls >/dev/null

# c1. The image's own bundle: the handshake must fail on the unknown issuer, and the bundle
#     must load (the SDK warns when no root can be read).
code=0
run_image -- AWS_ENDPOINT_URL="$endpoint" S3_BUCKET=image-tls DEBUG=true >"$work/c1.log" 2>&1 || code=$?
grep -iE 'certificate|issuer|tls|handshake' "$work/c1.log" | tail -5 || true
[ "$code" = 1 ] || fail "with the image's bundle, a private CA's server should be refused (exit 1), got $code"
grep -qiE 'UnknownIssuer|unknown ?issuer|invalid peer certificate' "$work/c1.log" ||
  fail "with the image's bundle, the failure was not a certificate error: $(tail -5 "$work/c1.log")"
if grep -qiE 'native root CA certificate|no native root' "$work/c1.log"; then
  fail "the image's CA bundle did not load: $(grep -iE 'native root' "$work/c1.log")"
fi
# Control: the same check does see a bundle with no certificate in it (a missing file is a
# configuration error of its own, exit 2, before any HTTPS client is built).
: >"$work/empty.pem"
code=0
run_image -v "$work/empty.pem:/run/empty.pem:ro" -- AWS_ENDPOINT_URL="$endpoint" \
  S3_BUCKET=image-tls DEBUG=true SSL_CERT_FILE=/run/empty.pem >"$work/c0.log" 2>&1 || code=$?
grep -iE -m1 'native root CA certificate|no native root' "$work/c0.log" ||
  fail "control: a missing bundle went unnoticed, so the check above proves nothing"
# c2. The private CA, mounted and named by SSL_CERT_FILE: the deploy goes through over TLS.
code=0
run_image -v "$work/ca.pem:/run/test-ca.pem:ro" -- AWS_ENDPOINT_URL="$endpoint" S3_BUCKET=image-tls \
  SSL_CERT_FILE=/run/test-ca.pem >"$work/c2.log" 2>&1 || code=$?
cat "$work/c2.log"
[ "$code" = 0 ] || fail "the deploy over HTTPS with SSL_CERT_FILE exited $code"
[ "$(objects image-tls)" = "$files" ] || fail "expected $files objects in s3://image-tls, found $(objects image-tls)"


# ---- 4. the arm64 binary, under user-mode emulation ----
step "d. the arm64 binary under qemu-aarch64-static: deploy, re-deploy, invalidation"
endpoint="http://127.0.0.1:$port"
aws s3 mb s3://image-arm64 >/dev/null
run_arm64() { # BUILD_NUMBER
  env -i PATH=/usr/bin:/bin HOME="$work" AWS_DEFAULT_REGION=us-east-1 AWS_EC2_METADATA_DISABLED=true \
    BITBUCKET_STEP_OIDC_TOKEN="$token" AWS_OIDC_ROLE_ARN=arn:aws:iam::123456789012:role/image-deploy \
    BITBUCKET_REPO_SLUG=image BITBUCKET_BUILD_NUMBER="$1" NO_COLOR=1 \
    AWS_ENDPOINT_URL="$endpoint" S3_BUCKET=image-arm64 LOCAL_PATH=examples/site DELETE_FLAG=true \
    DISTRIBUTION_ID="$distribution" SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt \
    timeout 300 qemu-aarch64-static "$ARM_BINARY"
}
code=0
run_arm64 10 >"$work/d1.log" 2>&1 || code=$?
cat "$work/d1.log"
[ "$code" = 0 ] || fail "the arm64 deploy exited $code"
grep -q "✔ Synced to s3://image-arm64/: $files uploaded" "$work/d1.log" ||
  fail "the arm64 deploy did not upload $files files"
grep -q "✔ Invalidation .* created" "$work/d1.log" || fail "the arm64 deploy made no invalidation"
[ "$(objects image-arm64)" = "$files" ] || fail "expected $files objects in s3://image-arm64, found $(objects image-arm64)"
for f in $(cd examples/site && find . -type f | sed 's|^\./||'); do
  aws s3 cp "s3://image-arm64/$f" "$work/got" >/dev/null
  cmp -s "$work/got" "examples/site/$f" || fail "s3://image-arm64/$f differs from examples/site/$f"
done
code=0
run_arm64 11 >"$work/d2.log" 2>&1 || code=$?
cat "$work/d2.log"
[ "$code" = 0 ] || fail "the arm64 re-deploy exited $code"
grep -q ": 0 uploaded, 0 headers re-applied, $files unchanged, 0 deleted" "$work/d2.log" ||
  fail "the arm64 re-deploy changed something"

echo "✔ test/image.sh: $IMAGE ($size bytes) deploys from inside the container: localhost, DNS and HTTPS"
echo "✔ test/image.sh: $ARM_IMAGE (${size_of[linux/arm64]} bytes) and $MULTI (linux/amd64, linux/arm64); the arm64 binary deploys under emulation"
