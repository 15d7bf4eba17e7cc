# syntax=docker/dockerfile:1
# ironpush's own image: the published wheel (from PyPI) and nothing else — the `ironpush` CLI,
# running the local IronMQ-compatible dev server by default:
#
#   docker build -t ironpush .
#   docker run -p 8080:8080 -v ironpush-dev:/data ironpush      # IRONMQ_EMULATOR_HOST=127.0.0.1:8080
#   docker run --rm ironpush queues --json                       # any other command
#
# To package YOUR service (its own code and requirements), copy examples/docker/Dockerfile
# into your repository instead. tests/test_dockerfile.py replays both files step by step.

FROM python:3.11-slim
ARG IRONPUSH_VERSION=0.1.0
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN useradd --create-home --uid 10001 ironpush && mkdir -p /data && chown ironpush:ironpush /data
# Runtime dependencies only: no test or dev extras in the image.
RUN pip install --no-cache-dir "ironpush==${IRONPUSH_VERSION}"
USER ironpush
WORKDIR /data
VOLUME ["/data"]
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/_dev/health', timeout=4)"]
ENTRYPOINT ["ironpush"]
CMD ["dev", "--host", "0.0.0.0", "--port", "8080", "--db", "/data/dev.sqlite"]
