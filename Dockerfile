# syntax=docker/dockerfile:1
#
# census-login production image.
#
#   docker build -t census-login:$(git rev-parse --short HEAD) \
#     --build-arg VERSION=$(git describe --tags --always) \
#     --build-arg GIT_COMMIT=$(git rev-parse HEAD) \
#     --build-arg BUILD_DATE=$(date -u +%Y-%m-%dT%H:%M:%SZ) .
#
# Provenance: .git is not in the build context (.dockerignore), so VERSION and GIT_COMMIT
# must be passed as above; the binary reports them (census_build_info{version,git_commit},
# `census-login --version`) as well as the image labels. The binary embeds its dependency
# list (cargo auditable: `cargo audit bin`, syft and trivy read it from the binary), and
# the image carries a CycloneDX SBOM at /usr/share/doc/census-login/sbom.cdx.json; to get
# the SBOM alone:  docker build --target sbom --output type=local,dest=. .
#
# Stages: chef (toolchain + cargo-chef) -> planner (recipe.json from the manifests)
# -> builder (dependencies cooked in their own cached layer, then the crate)
# -> runtime (distroless, no shell, non-root; plus the SAML libraries, see the builder).
#
# Lint: tests/deploy/check.sh (hadolint + build-context checks).

ARG RUST_VERSION=1.95.0
ARG DEBIAN_RELEASE=bookworm

########################################################################################
FROM rust:${RUST_VERSION}-slim-${DEBIAN_RELEASE} AS chef
ARG CARGO_CHEF_VERSION=0.1.73
ARG CARGO_AUDITABLE_VERSION=0.7.7
ARG CARGO_CYCLONEDX_VERSION=0.5.9
# cargo-chef turns Cargo.toml/Cargo.lock into a recipe whose dependencies are compiled in a
# layer that only changes when the dependency set changes, not on every source edit.
# cargo-auditable embeds the dependency tree into the binary; cargo-cyclonedx writes the
# SBOM. All three pinned and --locked.
# The login.gov.pl service provider (cargo feature national-node) links Debian's
# libxmlsec1 (1.2.37 on bookworm) and libxml2; samael's build script runs bindgen, which
# needs libclang. Versions follow the base image's Debian release.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      pkg-config libxmlsec1-dev libxml2-dev libssl-dev libclang-dev \
 && rm -rf /var/lib/apt/lists/*
RUN cargo install cargo-chef --locked --version "${CARGO_CHEF_VERSION}" \
 && cargo install cargo-auditable --locked --version "${CARGO_AUDITABLE_VERSION}" \
 && cargo install cargo-cyclonedx --locked --version "${CARGO_CYCLONEDX_VERSION}" \
 && rm -rf "${CARGO_HOME:-/usr/local/cargo}/registry"
WORKDIR /app

########################################################################################
FROM chef AS planner
COPY . .
RUN cargo chef prepare --recipe-path recipe.json

########################################################################################
FROM chef AS builder
# Argon2id dominates the CPU cost of every login and password definition. The argon2
# crate already picks its AVX2 block function at run time, which makes it 1.22x the
# reference C implementation (Debian's argon2) at our parameters; x86-64-v3 (AVX2, BMI2,
# FMA: every current server CPU) measured 1.25x, the same within noise
# (benches/argon2_reference.sh, docs/capacity.md). It stays as the default because
# every node class we target has it and it lets the compiler use those instructions in
# the rest of the code too. The nodes must support x86-64-v3, otherwise the binary dies
# with SIGILL at start-up; build with --build-arg RUSTFLAGS= for a baseline x86-64 image
# (the hash keeps its AVX2 path either way).
ARG RUSTFLAGS="-C target-cpu=x86-64-v3"
# Explicit --target: with it cargo applies RUSTFLAGS only to the target artefacts, not to
# build scripts and proc-macros that run on the build host (which may be older than the
# production nodes).
ARG CARGO_BUILD_TARGET=x86_64-unknown-linux-gnu
# Same ENV for cook and build, otherwise cargo sees different flags and rebuilds the
# cooked dependencies.
ENV RUSTFLAGS="${RUSTFLAGS}" \
    CARGO_BUILD_TARGET="${CARGO_BUILD_TARGET}" \
    CARGO_TERM_COLOR=never
COPY --from=planner /app/recipe.json recipe.json
# Dependency layer: cached until Cargo.toml/Cargo.lock change.
RUN cargo chef cook --release --locked --bin census-login --features national-node \
      --recipe-path recipe.json
# The crate itself. src/web is embedded into the binary at build time (rust-embed), so it
# must be in the build context (see .dockerignore).
COPY . .
# Provenance, after the cooked layer so a new commit does not rebuild the dependencies:
# build.rs reads CENSUS_VERSION and CENSUS_GIT_COMMIT (.git is not in the context).
ARG VERSION=0.1.0
ARG GIT_COMMIT=unknown
ENV CENSUS_VERSION="${VERSION}" \
    CENSUS_GIT_COMMIT="${GIT_COMMIT}"
# cargo auditable build = cargo build plus the dependency list in a .dep-v0 section.
RUN cargo auditable build --release --locked --bin census-login --features national-node \
 && install -D -m 0555 "target/${CARGO_BUILD_TARGET}/release/census-login" /out/census-login \
 && cargo cyclonedx --format json --spec-version 1.5 --features national-node \
      --override-filename census-login.cdx \
 && install -D -m 0444 census-login.cdx.json /out/sbom.cdx.json
# The shared libraries the binary needs beyond distroless cc (glibc, libgcc, libstdc++,
# OpenSSL): libxmlsec1(-openssl), libxml2, libxslt and theirs (ICU, liblzma, zlib), as
# the loader resolves them here, copied with their sonames.
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
RUN mkdir -p /out/lib \
 && ldd /out/census-login \
  | awk '$3 ~ /^\// {print $3}' \
  | grep -Ev '/(libc|libm|libgcc_s|libssl|libcrypto|libstdc\+\+)\.so' \
  | xargs -r -I{} cp -L {} /out/lib/ \
 && test -e /out/lib/libxmlsec1-openssl.so.1

########################################################################################
# The SBOM alone: docker build --target sbom --output type=local,dest=. .
FROM scratch AS sbom
COPY --from=builder /out/sbom.cdx.json /census-login.cdx.json

########################################################################################
# Distroless "cc": glibc, libgcc_s, ca-certificates, tzdata; no shell, no package
# manager. ":nonroot" runs as uid/gid 65532. Pin by digest in the release pipeline
# (gcr.io/distroless/cc-debian12:nonroot@sha256:...) so rebuilds are reproducible.
FROM gcr.io/distroless/cc-debian12:nonroot AS runtime

ARG VERSION=0.1.0
ARG GIT_COMMIT=unknown
ARG BUILD_DATE=unknown
LABEL org.opencontainers.image.title="census-login" \
      org.opencontainers.image.description="Census self-enumeration login backend (PESEL + password, lockout, survey window)" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${GIT_COMMIT}" \
      org.opencontainers.image.created="${BUILD_DATE}" \
      org.opencontainers.image.licenses="NOASSERTION" \
      org.opencontainers.image.base.name="gcr.io/distroless/cc-debian12:nonroot"

# Configuration: compiled-in defaults (config/default.toml), then
# $CENSUS_CONFIG_DIR/$CENSUS_ENV.toml, then CENSUS__<SECTION>__<KEY> environment variables,
# which override anything here (e.g. -e CENSUS__SERVER__PUBLIC_ORIGIN=...). In Kubernetes
# the ConfigMap generated from the same file is mounted over /etc/census-login.
# Secrets are never baked in: CENSUS__SECRETS__PEPPER_FILE / CENSUS__SECRETS__ADMIN_TOKEN.
ENV CENSUS_CONFIG_DIR=/etc/census-login \
    CENSUS_ENV=production
# Memory: each hashing thread owns its 19 MiB Argon2 buffer and reuses it (no allocator
# tuning), so RSS is the baseline plus slots x 19 MiB, which the pod's memory limit
# (k8s deployment.yaml) is sized for.
COPY --chown=0:0 --chmod=0444 config/production.toml /etc/census-login/production.toml
COPY --from=builder --chown=0:0 /out/lib/ /usr/lib/x86_64-linux-gnu/
COPY --from=builder --chown=0:0 /out/census-login /usr/local/bin/census-login
COPY --from=builder --chown=0:0 /out/sbom.cdx.json /usr/share/doc/census-login/sbom.cdx.json

# Numeric uid:gid (distroless "nonroot") so Kubernetes' runAsNonRoot can verify it.
USER 65532:65532
# 8080: public API and page. 9090: admin listener (/healthz, /readyz, /metrics, admin API);
# never route 9090 through the public ingress.
EXPOSE 8080 9090

# No HEALTHCHECK on purpose: Kubernetes ignores Docker's HEALTHCHECK and uses the
# startup/liveness/readiness probes on the admin port (/healthz, /readyz) defined in
# k8s/base/census-login/deployment.yaml; and a HEALTHCHECK would need a shell or curl,
# which this image deliberately does not contain.
ENTRYPOINT ["/usr/local/bin/census-login"]
CMD ["serve"]
