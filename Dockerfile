# syntax=docker/dockerfile:1
# postengine: one image for every role of the scale-out layout (docs/deploy.md): the API
# (`postengine serve`, the default command), publishing workers (`postengine worker`) and the
# one-shot migration (`postengine db upgrade`).

FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY src ./src
# A virtual environment, copied whole into the runtime image: no compiler, no pip cache there.
RUN python -m venv /opt/postengine && /opt/postengine/bin/pip install .

FROM python:3.11-slim
ENV PATH=/opt/postengine/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PE_DATA_DIR=/var/lib/postengine \
    PE_LOG_JSON=true
RUN groupadd --system --gid 10001 postengine \
    && useradd --system --uid 10001 --gid postengine --home-dir /var/lib/postengine --create-home \
       --shell /usr/sbin/nologin postengine
COPY --from=build /opt/postengine /opt/postengine
USER postengine
WORKDIR /var/lib/postengine
EXPOSE 8000
# Liveness only (/healthz checks no dependency): a database outage must not get every API
# container restarted. The load balancer uses /readyz to route around a process that cannot serve.
HEALTHCHECK --interval=15s --timeout=3s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=2)"]
CMD ["postengine", "serve", "--host", "0.0.0.0", "--port", "8000"]
