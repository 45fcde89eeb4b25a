# minigate: a small, non-root image. The project publishes none: build it.
#   docker build -t minigate:0.1.0 .                   # plain release build (default)
#   docker build --build-arg PGO=1 -t minigate:0.1.0 . # profile-guided (PGO)
# On 2 cores the plain build takes 4 to 9 minutes (5m50s measured on busy
# shared cores), the profile-guided one about 20 (two release builds and a
# training load); the profile-guided binary spends 14-22 % less CPU per
# proxied request (benches/README.md).
#
# With a binary built already (`cargo build --release --locked -p minigate`),
# the runtime stage alone, the same lines around it:
#   mkdir -p bin && cp target/release/minigate bin/ && strip bin/minigate
#   podman build --build-context build=bin -t minigate:0.1.0 .
# (`docker buildx build --build-context build=bin` likewise): the named
# context stands in for the build stage, whose /minigate it provides.
# deploy/image/test.sh builds and tests the image that way.

# Build stage: the workspace, release profile, locked dependencies.
FROM rust:1.95-slim-bookworm AS build
# 0: the plain release build; 1: the profile-guided one.
ARG PGO=0
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
# profile. llvm-tools brings the llvm-profdata of rustc's LLVM.
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

# Runtime: distroless with glibc and CA certificates (for the platforms'
# HTTPS), no shell, no package manager, uid 65532. deploy/image/base.sh makes
# an image of the same contents from Debian's packages, under this name.
FROM gcr.io/distroless/cc-debian12:nonroot AS runtime
COPY --from=build /minigate /usr/local/bin/minigate
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/minigate"]
CMD ["serve", "--config", "/etc/minigate/minigate.toml"]
