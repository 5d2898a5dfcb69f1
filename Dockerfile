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

# 0. The dependency skeleton (scripts/cargo-skeleton.sh): Cargo.lock, every member's
#    manifest and an empty stand-in for every target `cargo metadata` lists. This stage
#    sees all sources, but what it hands on is identical as long as the manifests are, so
#    the dependency layer below stays cached across source edits. NB: the target list
#    comes from cargo, not from a list typed here (a forgotten bench once broke the build);
#    tests/dockerfile.rs checks the skeleton against the workspace.
FROM ${RUST_IMAGE} AS skeleton
WORKDIR /src
COPY . .
RUN bash scripts/cargo-skeleton.sh /src /skeleton

FROM ${RUST_IMAGE} AS builder
WORKDIR /src
# Set to true to build from a pre-filled registry cache mount with no network (as
# scripts/build-image.sh does); cargo reads it from the environment.
ARG CARGO_NET_OFFLINE=false

# 1. Dependencies only, cached on the dependency graph: this layer is rebuilt when a
#    manifest or Cargo.lock changes, not on a source or README edit. --no-default-features
#    builds none of the other members.
COPY --from=skeleton /skeleton/ ./
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
