# clear-operator image: the Rust binary on a slim Debian base, running as non-root.
# Build (BuildKit, the default builder, for the cache mounts):
#   docker build -t clear-operator:dev .
# Image names here carry no registry host: tag and push to yours, then set the chart's
# image.repository.

FROM rust:1.95-slim-bookworm AS builder
WORKDIR /src
# NB: the whole workspace is copied because cargo needs every member's manifest to resolve
# the lockfile, even when building only the operator package. --no-default-features leaves
# out the `dev` subcommand and the emulator and simulator it embeds.
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p clear-operator --no-default-features \
    && install -D -m 0755 target/release/clear-operator /out/clear-operator

FROM debian:bookworm-slim
# Roots for the TLS calls to Clear (rustls reads the system store); nothing else.
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates=20230311+deb12u1 \
    && rm -rf /var/lib/apt/lists/*
COPY --from=builder /out/clear-operator /usr/local/bin/clear-operator
# Same numeric user as the chart's securityContext (runAsUser 65532), so runAsNonRoot holds.
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/clear-operator"]
CMD ["run"]
