# minigate: a small, non-root image.
#   docker build -t ghcr.io/minigate/minigate:0.1.0 .
# Build stage: the workspace, release profile, locked dependencies.
FROM rust:1.95-slim-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY jwks jwks
COPY gateway gateway
COPY benches benches
# Every workspace member must be copied: cargo reads them all.
RUN cargo build --release --locked -p minigate \
 && strip target/release/minigate

# Runtime: distroless with glibc and CA certificates (for WeChat's HTTPS),
# no shell, no package manager, uid 65532.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /src/target/release/minigate /usr/local/bin/minigate
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/minigate"]
CMD ["serve", "--config", "/etc/minigate/minigate.toml"]
