# syntax=docker/dockerfile:1
# NeuralLog server and CLI image (`neurallog serve`).
#
# Security guide, "Container Security" / "Image Security":
# - multi-stage: the Rust toolchain stays in the build stage;
# - minimal runtime: distroless `cc` (glibc and libgcc only): no shell, no package manager;
# - non-root: fixed UID/GID 10001, the same the operator sets in every pod's securityContext;
# - read-only root filesystem friendly: the server writes only to /data (its volume) and /tmp;
# - pinned images: by tag here. NB: no registry is reachable from the machine this file was
#   written on, so no digest could be verified and none is invented; pin with
#   `docker buildx imagetools inspect <image>` and replace `:tag` by `@sha256:<digest>`.
#
# Build: docker build -t ghcr.io/neurallog/neurallog:0.1.0 .
# CI builds the same release binaries with the same cargo command (.ci/operator-checks.sh).

ARG RUST_IMAGE=docker.io/library/rust:1.90-bookworm
ARG RUNTIME_IMAGE=gcr.io/distroless/cc-debian12:nonroot

FROM ${RUST_IMAGE} AS build
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p neurallog-cli -p neurallog-operator \
        --bin neurallog --bin neurallog-healthcheck \
    && install -D -m 0755 target/release/neurallog /out/usr/local/bin/neurallog \
    && install -D -m 0755 target/release/neurallog-healthcheck /out/usr/local/bin/neurallog-healthcheck \
    && install -d -m 0750 /out/data

FROM ${RUNTIME_IMAGE}
ARG VERSION=0.1.0
ARG REVISION=unknown
LABEL org.opencontainers.image.title="neurallog" \
      org.opencontainers.image.description="NeuralLog: secure multi-tenant log server and CLI" \
      org.opencontainers.image.source="https://github.com/neurallog/neurallog" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.vendor="NeuralLog" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}"
COPY --from=build /out/usr/local/bin/ /usr/local/bin/
COPY --from=build --chown=10001:10001 /out/data /data
ENV PORT=3030 \
    METRICS_PORT=9464 \
    NEURALLOG_BIND=0.0.0.0 \
    NEURALLOG_DATA_DIR=/data
USER 10001:10001
WORKDIR /data
VOLUME ["/data"]
EXPOSE 3030 9464
# NB: distroless has no curl; the check is a small static program from this repository.
# Kubernetes ignores HEALTHCHECK and uses the pod's /health and /ready probes instead.
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
    CMD ["/usr/local/bin/neurallog-healthcheck", "http://127.0.0.1:3030/health"]
ENTRYPOINT ["/usr/local/bin/neurallog"]
CMD ["serve"]
