# syntax=docker/dockerfile:1
# Collab Hub: one uvicorn process per container; scale out with replicas on one Redis + MongoDB.
FROM python:3.12-slim AS base
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /app

# Dependencies first, so this layer is cached until pyproject.toml changes.
COPY pyproject.toml README.md ./
RUN mkdir -p hub schema resolvers && touch hub/__init__.py schema/__init__.py resolvers/__init__.py \
 && pip install . && pip uninstall -y collabhub

COPY hub ./hub
COPY schema ./schema
COPY resolvers ./resolvers
RUN pip install --no-deps . \
 && useradd --system --uid 10001 --home /app hub \
 && mkdir -p /data && chown hub /data

USER hub
ENV HUB_HOST=0.0.0.0 HUB_PORT=8000 HUB_DATA_DIR=/data HUB_ENV=production
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s --retries=3 \
  CMD python -c "import urllib.request,sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/healthz').status != 200)"
CMD ["uvicorn", "--factory", "hub.app:create_app", "--host", "0.0.0.0", "--port", "8000", \
     "--ws", "websockets-sansio", "--proxy-headers", "--timeout-graceful-shutdown", "10"]
