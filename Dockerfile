# syntax=docker/dockerfile:1
# A small image for switchboard: a static binary on distroless, running as
# a non-root user. Build: docker build -t switchboard .
# stdio MCP servers run inside the container, so an image that uses npx/uvx
# servers needs a base with node or python instead of distroless.

FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/switchboard ./cmd/switchboard && \
    CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/tasks-mcp ./cmd/tasks-mcp

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/switchboard /out/tasks-mcp /usr/local/bin/
COPY deploy/switchboard.docker.yaml /etc/switchboard/switchboard.yaml
ENV SWITCHBOARD_CONFIG=/etc/switchboard/switchboard.yaml \
    SWITCHBOARD_ADDR=0.0.0.0:8080
USER nonroot:nonroot
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=5s CMD ["/usr/local/bin/switchboard", "healthcheck"]
ENTRYPOINT ["/usr/local/bin/switchboard"]
CMD ["serve"]
