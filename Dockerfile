# ironpush's own image: the `ironpush` CLI, running the local IronMQ-compatible dev server by
# default. From a clone, it builds the wheel of the checkout; with IRONPUSH_VERSION it installs
# that release from PyPI instead:
#
#   docker build -t ironpush .                                        # the checkout
#   docker build --build-arg IRONPUSH_VERSION=0.1.0 -t ironpush .     # ironpush==0.1.0, PyPI
#   docker run -p 8080:8080 -v ironpush-dev:/data ironpush      # IRONMQ_EMULATOR_HOST=127.0.0.1:8080
#   docker run --rm ironpush queues --json                       # any other command
#
# To package YOUR service (its own code and requirements), copy examples/docker/Dockerfile
# into your repository instead. tests/test_dockerfile.py replays the final stage's steps;
# .ci/images.sh builds and runs both images.

# Stage 1: the ironpush wheel, built from the build context or downloaded from PyPI.
FROM python:3.11-slim AS wheel
ARG IRONPUSH_VERSION=
ENV PIP_DISABLE_PIP_VERSION_CHECK=1
COPY . /src
RUN if [ -n "$IRONPUSH_VERSION" ]; then \
        pip download --no-cache-dir --no-deps --only-binary :all: --dest /wheels \
            "ironpush==${IRONPUSH_VERSION}"; \
    else \
        pip wheel --no-cache-dir --no-deps --wheel-dir /wheels /src; \
    fi

# Stage 2: the image, with that wheel and its runtime dependencies only (no build tools, no
# sources, no test or dev dependencies).
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN useradd --create-home --uid 10001 ironpush && mkdir -p /data && chown ironpush:ironpush /data
COPY --from=wheel /wheels /wheels
RUN pip install --no-cache-dir /wheels/ironpush-*.whl && rm -rf /wheels
USER ironpush
WORKDIR /data
VOLUME ["/data"]
EXPOSE 8080
# The dev server's liveness endpoint (the only line to change if that path moves).
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/_dev/health', timeout=4)"]
ENTRYPOINT ["ironpush"]
CMD ["dev", "--host", "0.0.0.0", "--port", "8080", "--db", "/data/dev.sqlite"]
