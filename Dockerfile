# syntax=docker/dockerfile:1
# Roombook API image: dependencies resolved by uv in a build stage, a slim non-root runtime.

FROM python:3.11-slim-bookworm AS build
COPY --from=ghcr.io/astral-sh/uv:0.13 /uv /usr/local/bin/uv
ENV UV_COMPILE_BYTECODE=1 UV_LINK_MODE=copy UV_PYTHON_DOWNLOADS=never
WORKDIR /srv
# Optional extras, e.g. `--build-arg UV_EXTRAS=otel` for OpenTelemetry tracing.
ARG UV_EXTRAS=
COPY pyproject.toml uv.lock ./
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --locked --no-dev --no-install-project ${UV_EXTRAS:+--extra $UV_EXTRAS}
COPY app ./app
COPY migrations ./migrations
COPY alembic.ini ./

FROM python:3.11-slim-bookworm AS runtime
ENV PATH=/srv/.venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    ENVIRONMENT=production \
    SERVER__HOST=0.0.0.0
RUN groupadd --system roombook && useradd --system --gid roombook --home /srv roombook
WORKDIR /srv
COPY --from=build --chown=roombook:roombook /srv /srv
USER roombook
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=3s --start-period=10s --retries=3 \
    CMD ["python", "-c", "import urllib.request,sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/health/live', timeout=2).status != 200)"]
# Migrations are not run here: the compose `migrate` service (or a deploy job) runs
# `python -m app.cli migrate` once before the API starts.
CMD ["python", "-m", "app.cli", "serve"]
