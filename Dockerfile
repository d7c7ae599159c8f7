# Our images: one static binary on a minimal base.
#   docker build -t consul-ecs .                         # consul-ecs (mesh-init, health-sync, controller, dev-server, …)
#   docker build --build-arg GIT_COMMIT=$(git rev-parse --short HEAD) -t consul-ecs .
# mesh-init copies this binary into the task's shared volume, where the app and dataplane containers run it, so it
# must not depend on any shared library: it is linked statically against musl.
FROM rust:1.95-alpine AS build
RUN apk add --no-cache musl-dev
WORKDIR /src
COPY . .
ARG GIT_COMMIT=""
ENV GIT_COMMIT=${GIT_COMMIT}
RUN cargo build --release --locked -p consul-ecs \
 && cp target/release/consul-ecs /consul-ecs

FROM alpine:3.20
# ca-certificates for AWS endpoints; the binary itself needs nothing else.
RUN apk add --no-cache ca-certificates \
 && adduser -D -H -u 5996 consul-ecs
COPY --from=build /consul-ecs /bin/consul-ecs
USER 5996
ENTRYPOINT ["/bin/consul-ecs"]
