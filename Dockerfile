# syntax=docker/dockerfile:1
# Autopack's image: the service, bubblewrap (every builder, auditor and probe runs under it) and
# nothing else. Non-root (uid 10001); `autopack` is the entrypoint, `serve` the default command:
#   docker build -t autopack .
#   docker run --env-file .env -p 8000:8000 autopack            # web + worker, SQLite in /data
#   docker run --env-file .env autopack worker                   # or: web, migrate, setup, ...
# compose.yaml and manifests/ run it with PostgreSQL; docs/operations.md explains both.

FROM python:3.11-slim-bookworm AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY app ./app
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11-slim-bookworm
# bubblewrap: the sandbox (it needs user namespaces: docs/operations.md, "The sandbox");
# tini: PID 1 that reaps what builders leave behind; git, ca-certificates: what agents expect.
RUN apt-get update \
 && apt-get install -y --no-install-recommends bubblewrap ca-certificates git tini \
 && rm -rf /var/lib/apt/lists/*
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    pip install --no-cache-dir /wheels/*.whl

# ---- Agent CLIs ---------------------------------------------------------------------------------
# Install the coding agents your builder profiles run here, under /opt/agents, for example:
#   RUN apt-get update && apt-get install -y --no-install-recommends nodejs npm \
#    && npm install --global --prefix /opt/agents <your-agent-cli> && rm -rf /var/lib/apt/lists/*
# then name them in the operator file (AUTOPACK_CONFIG), e.g.
#   [builders.default]
#   command = ["/opt/agents/bin/<your-agent-cli>", "--non-interactive"]
#   read_only = ["/opt/agents"]
# The sandbox shows the root filesystem read-only, so anything under /usr or /opt is visible;
# an agent's API key goes in the profile's `env` from the server's environment (docs/builders.md).
# --------------------------------------------------------------------------------------------------

RUN useradd --system --uid 10001 --gid 0 --home-dir /home/autopack --create-home autopack \
 && mkdir -p /data /app \
 && chown 10001:0 /data && chmod 0770 /data
WORKDIR /app
# The App manifest `autopack setup` registers (it looks for ./app.yml first).
COPY app.yml ./
ENV PORT=8000 \
    AUTOPACK_DATA_DIR=/data \
    DATABASE_URL=sqlite+aiosqlite:////data/autopack.db \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
USER 10001
VOLUME ["/data"]
EXPOSE 8000
ENTRYPOINT ["tini", "--", "autopack"]
CMD ["serve"]
