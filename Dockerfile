# The crumbs binary in a small image. Every stage runs from it: `crumbs collect | enrich |
# detect | sink`. The bpf2go output is committed, so the build needs no clang.
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/crumbs ./cmd/crumbs

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates && rm -rf /var/lib/apt/lists/*
COPY --from=build /out/crumbs /usr/local/bin/crumbs
# Metrics and /healthz; bound on every interface inside the container.
ENV CRUMBS_METRICS_LISTEN=0.0.0.0:9464
EXPOSE 9464
ENTRYPOINT ["/usr/local/bin/crumbs"]
