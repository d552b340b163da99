# The crumbs binary in a small image. Every stage runs from it: `crumbs collect | enrich |
# detect | sink | deliver`. The bpf2go output is committed, so the build needs no clang.
#
# Stages run as the non-root user crumbs (uid and gid 10001, as the Kubernetes manifests
# say), with no capability (run them with cap_drop: ALL). The collector alone starts as root
# (user: "0") with the capabilities it needs to load its programs and to become crumbs, and
# keeps only its run-time set once they are attached (docs/deploy.md, "The units"):
#   cap_drop: [ALL]
#   cap_add: [BPF, PERFMON, SYS_ADMIN, DAC_READ_SEARCH, SYS_PTRACE, SETUID, SETGID, SETPCAP, CHOWN, FOWNER, DAC_OVERRIDE]
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/crumbs ./cmd/crumbs

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 crumbs \
 && useradd --system --uid 10001 --gid crumbs --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin crumbs \
 && install -d -m 0755 /var/lib/crumbs \
 && install -d -m 0700 -o crumbs -g crumbs /var/lib/crumbs/spool /var/lib/crumbs/scan /var/lib/crumbs/kafka
COPY --from=build /out/crumbs /usr/local/bin/crumbs
# Metrics and /healthz; bound on every interface inside the container.
ENV CRUMBS_METRICS_LISTEN=0.0.0.0:9464
EXPOSE 9464
USER crumbs
# /healthz of metrics.listen, with what the image has (bash's /dev/tcp; no curl): a service
# that turns metrics off (CRUMBS_METRICS_LISTEN empty) reports unhealthy, so leave it on.
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
  CMD ["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/${CRUMBS_METRICS_LISTEN##*:} && printf 'GET /healthz HTTP/1.0\\r\\n\\r\\n' >&3 && head -n1 <&3 | grep -q ' 200 '"]
ENTRYPOINT ["/usr/local/bin/crumbs"]
