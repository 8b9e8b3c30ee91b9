# s3-deploy-pipe image: one static binary and a CA bundle, FROM scratch.
#
# Full build (what the release pipeline runs; needs the Rust image from a registry), for
# linux/amd64 or linux/arm64. The builder runs on the build machine's own platform and
# cross-compiles, so no emulation is needed for either:
#   docker build --platform linux/arm64 -t s3deploypipe/s3-deploy-pipe:X.Y.Z-arm64 .
#   docker buildx build --platform linux/amd64,linux/arm64 -t s3deploypipe/s3-deploy-pipe:X.Y.Z .
# From a binary built outside Docker (what CI runs with buildah; no registry needed):
#   RUSTFLAGS='-C target-feature=+crt-static -C relocation-model=static' \
#     cargo build --release --locked --target x86_64-unknown-linux-gnu
#   cp /etc/ssl/certs/ca-certificates.crt target/ca-certificates.crt
#   docker build --target from-binary -t s3-deploy-pipe:local .
#   (arm64: --platform linux/arm64 --build-arg BINARY=target/aarch64-unknown-linux-gnu/release/s3-deploy-pipe;
#   test/image.sh shows the cross-compiling environment)
#
# No WORKDIR in the final image: Bitbucket runs a pipe with `-w $BITBUCKET_CLONE_DIR` and the
# clone mounted there, so a relative LOCAL_PATH resolves against the clone.

ARG VERSION=0.1.0
# The builder image. The release pipeline pins it by digest (rust@sha256:…, looked up when it
# runs) and records it in the label below, so that a release can be rebuilt with the same one.
ARG RUST_IMAGE=rust:1.95-slim-bookworm

# ---- builder: a static glibc binary, dependencies cached in their own layer ----
# crt-static links glibc statically (its getaddrinfo reads /etc/hosts and /etc/resolv.conf
# without NSS modules: proven by test/image.sh); relocation-model=static makes it non-PIE,
# 0.7 MB smaller. --target keeps build scripts and proc macros dynamic, as they must be.
FROM --platform=$BUILDPLATFORM ${RUST_IMAGE} AS builder
ARG TARGETARCH
WORKDIR /build
ENV CARGO_TERM_COLOR=never \
    RUSTFLAGS="-C target-feature=+crt-static -C relocation-model=static" \
    CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc \
    CC_aarch64_unknown_linux_gnu=aarch64-linux-gnu-gcc \
    CXX_aarch64_unknown_linux_gnu=aarch64-linux-gnu-g++ \
    AR_aarch64_unknown_linux_gnu=aarch64-linux-gnu-ar
# The Rust target of the image's platform, and for arm64 Debian's cross toolchain.
RUN case "${TARGETARCH:-amd64}" in \
      amd64) echo x86_64-unknown-linux-gnu > /target ;; \
      arm64) echo aarch64-unknown-linux-gnu > /target \
             && apt-get update -qq \
             && apt-get install -y -qq --no-install-recommends gcc-aarch64-linux-gnu g++-aarch64-linux-gnu libc6-dev-arm64-cross >/dev/null \
             && rm -rf /var/lib/apt/lists/* ;; \
      *) echo "unsupported platform linux/$TARGETARCH: linux/amd64 and linux/arm64 are" >&2; exit 1 ;; \
    esac \
 && rustup target add "$(cat /target)" \
 && cargo install --quiet --locked cargo-auditable@0.7.7 cargo-cyclonedx@0.5.9
# 1. Dependencies only: the manifests with stub sources. This layer is reused until
#    Cargo.toml or Cargo.lock change.
COPY Cargo.toml Cargo.lock ./
RUN mkdir src \
 && echo 'fn main() {}' > src/main.rs \
 && touch src/lib.rs \
 && cargo build --release --locked --target "$(cat /target)" --bin s3-deploy-pipe \
 && rm -rf src
# 2. The crate itself. touch: COPY keeps the context's mtimes, which can be older than the
#    stub build, and cargo would then keep the stub.
# cargo auditable embeds the dependency list in the binary (section .dep-v0), for scanners;
# the SBOM (CycloneDX) goes beside it in the image, as /sbom.cdx.json.
COPY src ./src
RUN touch src/main.rs src/lib.rs \
 && cargo auditable build --release --locked --target "$(cat /target)" --bin s3-deploy-pipe \
 && cargo cyclonedx --quiet --format json --spec-version 1.5 --describe binaries --target "$(cat /target)" \
 && mv s3-deploy-pipe_bin.cdx.json /sbom.cdx.json \
 && cp "target/$(cat /target)/release/s3-deploy-pipe" /s3-deploy-pipe \
 && cp /etc/ssl/certs/ca-certificates.crt /ca-certificates.crt

# ---- the image's common part ----
FROM scratch AS base
ARG VERSION
ARG RUST_IMAGE
LABEL org.opencontainers.image.title="s3-deploy-pipe" \
      org.opencontainers.image.description="Bitbucket Pipe: sync a folder to Amazon S3 like aws s3 sync and invalidate CloudFront, with Bitbucket OIDC credentials" \
      org.opencontainers.image.source="https://bitbucket.org/s3-deploy-pipe/s3-deploy-pipe" \
      org.opencontainers.image.url="https://bitbucket.org/s3-deploy-pipe/s3-deploy-pipe" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      dev.s3-deploy-pipe.builder="${RUST_IMAGE}"
# rustls-native-certs reads SSL_CERT_FILE; the file is also at the path it probes by default.
# Override with `-e SSL_CERT_FILE=/path/to/bundle.pem` (mounted) for a private CA.
ENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt
ENTRYPOINT ["/s3-deploy-pipe"]

# ---- from-binary: package a binary built outside Docker (CI; `--target from-binary`) ----
FROM base AS from-binary
ARG VERSION
ARG BINARY=target/x86_64-unknown-linux-gnu/release/s3-deploy-pipe
ARG CA_BUNDLE=target/ca-certificates.crt
ARG SBOM=target/sbom/s3-deploy-pipe-${VERSION}-linux-amd64.cdx.json
COPY ${CA_BUNDLE} /etc/ssl/certs/ca-certificates.crt
COPY ${SBOM} /sbom.cdx.json
COPY ${BINARY} /s3-deploy-pipe

# ---- default target: the full build ----
FROM base AS image
COPY --from=builder /ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY --from=builder /sbom.cdx.json /sbom.cdx.json
COPY --from=builder /s3-deploy-pipe /s3-deploy-pipe
