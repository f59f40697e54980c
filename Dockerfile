# Builds the one `mailroom` binary; the same image runs the API (`serve`) and the workers (`work`).
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin mailroom

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* && useradd --system --uid 10001 mailroom \
    && mkdir /outbox && chown mailroom /outbox
COPY --from=build /src/target/release/mailroom /usr/local/bin/mailroom
USER mailroom
ENTRYPOINT ["mailroom"]
CMD ["work"]
