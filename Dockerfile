# minigate: a small, non-root image.
#   docker build -t ghcr.io/minigate/minigate:0.1.0 .           # profile-guided (PGO)
#   docker build --build-arg PGO=0 -t minigate:plain .          # plain release build
# Build stage: the workspace, release profile, locked dependencies.
FROM rust:1.95-slim-bookworm AS build
# 1: the profile-guided build (two release builds and a training load: 20
# minutes where the plain build took 4); 0: the plain release build.
ARG PGO=1
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY jwks jwks
COPY gateway gateway
COPY benches benches
# Every workspace member must be copied: cargo reads them all.
# `cargo fetch --locked` fails on a stale Cargo.lock, so the builds after it
# use exactly the locked dependencies.
# PGO=1 runs benches/pgo.sh: minigate built instrumented, trained on a load
# of proxied, public, forward-auth, login and refresh requests over
# HTTP/1.1, TLS and HTTP/2 (behind an nginx stand-in upstream, driven by wrk
# and h2load, all installed in this stage only), then built again with the
# profile: 14-22 % less CPU per proxied request than the plain build
# (benches/README.md). llvm-tools brings the llvm-profdata of rustc's LLVM.
RUN cargo fetch --locked \
 && if [ "$PGO" = 1 ]; then \
      rustup component add llvm-tools \
      && benches/pgo.sh \
      && cp target/pgo/minigate /minigate; \
    else \
      cargo build --release --locked -p minigate \
      && cp target/release/minigate /minigate; \
    fi \
 && strip /minigate

# Runtime: distroless with glibc and CA certificates (for WeChat's HTTPS),
# no shell, no package manager, uid 65532.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /minigate /usr/local/bin/minigate
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/minigate"]
CMD ["serve", "--config", "/etc/minigate/minigate.toml"]
