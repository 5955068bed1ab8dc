# syntax=docker/dockerfile:1
# Build: docker build -t trainbot .
# Run:   docker run -v trainbot-data:/data -v $PWD/bot.toml:/etc/trainbot/bot.toml trainbot
FROM rust:1.95-slim-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked && strip target/release/trainbot

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends git ca-certificates tini \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --home-dir /data --shell /usr/sbin/nologin trainbot \
 && mkdir -p /data /etc/trainbot && chown trainbot /data
COPY --from=build /src/target/release/trainbot /usr/local/bin/trainbot
USER trainbot
WORKDIR /data
VOLUME ["/data"]
EXPOSE 8080
# Point bot.data_dir at /data in the config; SIGTERM stops the bot cleanly.
ENTRYPOINT ["tini", "--", "trainbot", "--config", "/etc/trainbot/bot.toml"]
CMD ["run"]
