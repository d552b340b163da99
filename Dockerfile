# The crumbs binary in a small image. Every stage runs from it: `crumbs collect | enrich |
# detect | sink | deliver`. The bpf2go output is committed, so the build needs no clang.
#
# Stages run as the non-root user crumbs, with no capability (run them with cap_drop: ALL).
# The collector alone starts as root (user: "0") with the capabilities it needs to load its
# programs and to become crumbs, and keeps only its run-time set once they are attached
# (README, "Who runs as whom"):
#   cap_drop: [ALL]
#   cap_add: [BPF, PERFMON, SYS_ADMIN, DAC_READ_SEARCH, SYS_PTRACE, SETUID, SETGID, SETPCAP, CHOWN]
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/crumbs ./cmd/crumbs

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates && rm -rf /var/lib/apt/lists/* \
 && useradd --system --user-group --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin crumbs \
 && install -d -m 0755 /var/lib/crumbs \
 && install -d -m 0700 -o crumbs -g crumbs /var/lib/crumbs/spool /var/lib/crumbs/scan /var/lib/crumbs/kafka
COPY --from=build /out/crumbs /usr/local/bin/crumbs
# Metrics and /healthz; bound on every interface inside the container.
ENV CRUMBS_METRICS_LISTEN=0.0.0.0:9464
EXPOSE 9464
USER crumbs
ENTRYPOINT ["/usr/local/bin/crumbs"]
