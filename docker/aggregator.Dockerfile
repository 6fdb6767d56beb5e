# syntax=docker/dockerfile:1.7
# Canopy aggregator: QUIC ingest, storage, HTTP/gRPC APIs and dashboard.
#
# Multi-arch build from the repository root (BuildKit cross-compiles on the
# build machine's own architecture; no emulation):
#   docker buildx build --platform linux/arm64,linux/amd64 \
#     -f docker/aggregator.Dockerfile -t REGISTRY/canopy-aggregator:VERSION --push .
# The runtime image is distroless (glibc, CA certificates, nothing else),
# runs as uid 65532 and writes nothing outside mounted volumes, so it runs
# with a read-only root filesystem.

ARG RUST_VERSION=1.95

FROM --platform=$BUILDPLATFORM rust:${RUST_VERSION}-slim-bookworm AS build
ARG TARGETARCH
ARG BUILDARCH
WORKDIR /src
# A cross C toolchain only when the target differs from the build machine
# (ring and zstd-style crates compile C).
RUN set -eux; \
    case "$TARGETARCH" in \
      arm64) triple=aarch64-unknown-linux-gnu; gcc=gcc-aarch64-linux-gnu; cc=aarch64-linux-gnu-gcc ;; \
      amd64) triple=x86_64-unknown-linux-gnu; gcc=gcc-x86-64-linux-gnu; cc=x86_64-linux-gnu-gcc ;; \
      *) echo "unsupported TARGETARCH $TARGETARCH" >&2; exit 1 ;; \
    esac; \
    if [ "$TARGETARCH" != "$BUILDARCH" ]; then \
      apt-get update; apt-get install -y --no-install-recommends "$gcc" libc6-dev-"$TARGETARCH"-cross; \
      rm -rf /var/lib/apt/lists/*; \
      printf 'CARGO_TARGET_%s_LINKER=%s\nCC_%s=%s\n' "$(echo "$triple" | tr a-z- A-Z_)" "$cc" "$(echo "$triple" | tr - _)" "$cc" > /cross.env; \
    else : > /cross.env; fi; \
    echo "$triple" > /triple; \
    rustup target add "$triple"
# Amazon RDS's CA bundle (over HTTPS, checked against the system CAs), for
# the runtime image's sslrootcert.
RUN set -eux; \
    apt-get update; apt-get install -y --no-install-recommends curl ca-certificates; \
    rm -rf /var/lib/apt/lists/*; \
    curl --fail --silent --show-error --proto =https --tlsv1.2 -o /rds-global-bundle.pem \
      https://truststore.pki.rds.amazonaws.com/global/global-bundle.pem; \
    grep -q "BEGIN CERTIFICATE" /rds-global-bundle.pem
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target,id=canopy-target-$TARGETARCH \
    set -eux; triple=$(cat /triple); set -a; . /cross.env; set +a; \
    cargo build --release --locked -p canopy-aggregator --bin canopy-aggregator --target "$triple"; \
    cp "target/$triple/release/canopy-aggregator" /canopy-aggregator

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /canopy-aggregator /usr/local/bin/canopy-aggregator
# Amazon RDS's CA bundle: the Terraform module's database URL uses
# sslmode=verify-full with this file as sslrootcert.
COPY --from=build --chmod=0444 /rds-global-bundle.pem /etc/ssl/certs/rds-global-bundle.pem
USER 65532:65532
EXPOSE 4433/udp 8080/tcp 50051/tcp 9090/tcp
# Liveness is checked from outside: the load balancer probes GET /healthz on 8080,
# and distroless has no shell or curl to run a HEALTHCHECK command with.
HEALTHCHECK NONE
ENTRYPOINT ["/usr/local/bin/canopy-aggregator"]
