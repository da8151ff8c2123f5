# The turnwise project image (CPU): the package, its tests and the CLI.
# Build from the repository root:
#   docker build -f docker/turnwise.Dockerfile -t turnwise .
#   docker run --rm turnwise turnwise demo
# Later families add their system packages (Chromium, bubblewrap, Xvfb, ...) through
# scripts/install-system-deps.sh, which this image runs, so the image stays in step with them.
FROM python:3.11-slim-bookworm

ENV PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1

WORKDIR /opt/turnwise
COPY . .

RUN apt-get update \
    && apt-get install -y --no-install-recommends make \
    && bash scripts/install-system-deps.sh \
    && rm -rf /var/lib/apt/lists/* \
    && python -m pip install -e ".[dev]"

CMD ["turnwise", "--help"]
