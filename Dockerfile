# syntax=docker/dockerfile:1
# A slim production image that serves your ASGI app (mounting a PushRouter) with `ironpush serve`.
#
#   docker build --build-arg APP_DIR=myservice -t myservice .
#   docker run -p 8000:8000 \
#     -e IRONPUSH_APP=myservice.app:app -e IRONPUSH_HEALTH_PATH=/ironmq/_health \
#     -e IRON_PROJECT_ID=... -e IRON_TOKEN=... -e IRONPUSH_SECRET_KEYS=... \
#     myservice
#
# Without --build-arg it packages examples/ and serves examples.starlette_service:app.
# tests/test_dockerfile.py replays these steps (same wheel, same commands) in a fresh venv.

FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY ironpush ./ironpush
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /wheels .

FROM python:3.11-slim
ARG APP_DIR=examples
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    IRONPUSH_APP=examples.starlette_service:app \
    IRONPUSH_HOST=0.0.0.0 \
    IRONPUSH_PORT=8000 \
    IRONPUSH_WORKERS=1 \
    IRONPUSH_HEALTH_PATH=/ironmq/_health
RUN useradd --create-home --uid 10001 ironpush
COPY --from=build /wheels /wheels
# Runtime dependencies only: no test or dev extras in the image.
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
WORKDIR /app
COPY --chown=ironpush ${APP_DIR} /app/${APP_DIR}
USER ironpush
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ['IRONPUSH_PORT'] + os.environ['IRONPUSH_HEALTH_PATH'], timeout=4)"]
CMD ["sh", "-c", "exec ironpush serve \"$IRONPUSH_APP\" --host \"$IRONPUSH_HOST\" --port \"$IRONPUSH_PORT\" --workers \"$IRONPUSH_WORKERS\""]
