# One static parley binary in a minimal image.
#
#   docker build -t parley .
#   docker run -p 8080:8080 -p 8443:8443/udp -v parley-data:/data parley
#
# The image runs `parley serve` on all interfaces with its data in /data;
# pass another command (core, edge) and its flags to run a region's parts.
# (Not built in CI: the CI machines have no Docker engine.)
FROM golang:1.26.8-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/parley ./cmd/parley \
	&& mkdir -p /out/data

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/parley /parley
COPY --from=build --chown=nonroot:nonroot /out/data /data
VOLUME /data
EXPOSE 8080/tcp 8443/udp
ENTRYPOINT ["/parley"]
# NATS stays in-process: the cores trust what arrives on it, so it is
# never exposed beyond the region's private network.
CMD ["serve", "--data", "/data", "--http", "0.0.0.0:8080", "--udp", "0.0.0.0:8443", "--nats", "-"]
