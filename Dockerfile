# clear-operator image: the Rust binary on distroless, non-root, no shell or package manager.
# Build (BuildKit, the default builder, for the registry cache mount):
#   docker build -t clear-operator:dev .
# Pin the base images by digest for reproducible builds, e.g.
#   docker build \
#     --build-arg RUST_IMAGE=rust:1.95-slim-bookworm@sha256:<digest> \
#     --build-arg RUNTIME_IMAGE=gcr.io/distroless/cc-debian12:nonroot@sha256:<digest> .
# Then tag and push to your registry and set the chart's image.repository.

# NB: distroless "cc" (glibc, libgcc, CA roots, /etc/passwd with nonroot 65532) rather than
# "static": the binary links glibc dynamically, as the builder's toolchain makes it; the
# builder and the runtime are both Debian 12, so the glibc versions match.
ARG RUST_IMAGE=rust:1.95-slim-bookworm
ARG RUNTIME_IMAGE=gcr.io/distroless/cc-debian12:nonroot

FROM ${RUST_IMAGE} AS builder
WORKDIR /src

# 1. Dependencies only, cached on the dependency graph: this layer is rebuilt when a
#    manifest or Cargo.lock changes, not on a source or README edit. Cargo reads every
#    workspace member's manifest (and needs each declared target to exist), so the members
#    get empty stand-ins; --no-default-features builds none of them.
COPY Cargo.toml Cargo.lock ./
COPY crates/kube-emulator/Cargo.toml crates/kube-emulator/
COPY crates/emulator-patch/Cargo.toml crates/emulator-patch/
COPY crates/emulator-schema/Cargo.toml crates/emulator-schema/
COPY crates/clear-sandbox/Cargo.toml crates/clear-sandbox/
RUN mkdir -p src benches \
      crates/kube-emulator/src crates/emulator-patch/src \
      crates/emulator-schema/src crates/clear-sandbox/src \
    && for f in src/main.rs benches/emulator.rs benches/apply_to_secret.rs \
        crates/kube-emulator/src/main.rs crates/clear-sandbox/src/main.rs; do \
        echo 'fn main() {}' > "$f"; \
      done \
    && touch src/lib.rs crates/kube-emulator/src/lib.rs crates/emulator-patch/src/lib.rs \
      crates/emulator-schema/src/lib.rs crates/clear-sandbox/src/lib.rs
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    cargo build --profile dist --locked -p clear-operator --no-default-features

# 2. The operator's own sources. NB: COPY keeps the files' modification times, which can be
#    older than the stand-ins' build; touching them makes cargo rebuild the crate.
COPY src ./src
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    touch src/main.rs src/lib.rs \
    && cargo build --profile dist --locked -p clear-operator --no-default-features \
    && install -D -m 0755 target/dist/clear-operator /out/clear-operator

FROM ${RUNTIME_IMAGE}
ARG RUNTIME_IMAGE
ARG VERSION=0.1.0
ARG REVISION=unknown
LABEL org.opencontainers.image.title="clear-operator" \
      org.opencontainers.image.description="Kubernetes operator that keeps Clear (ClearTax) API access tokens alive in Secrets" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.base.name="${RUNTIME_IMAGE}"
COPY --from=builder /out/clear-operator /usr/local/bin/clear-operator
# Same numeric user as the chart's securityContext (runAsUser 65532), so runAsNonRoot holds.
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/clear-operator"]
CMD ["run"]
