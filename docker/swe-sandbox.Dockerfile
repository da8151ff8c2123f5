# The base image of software-engineering sandboxes: a repository is copied into /workspace, its
# dependencies installed on top of this image, and its test suite run as the unprivileged
# `agent` user. The agent's commands run here, never on the host. With no Docker engine,
# turnwise runs the same tasks in bubblewrap sandboxes instead.
#
# Build from the repository root:
#   docker build -f docker/swe-sandbox.Dockerfile -t turnwise-swe-sandbox .
#   docker run --rm --network none -v "$PWD/repo:/workspace" turnwise-swe-sandbox \
#     python -m pytest -q
FROM python:3.11-slim-bookworm

ENV PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1

RUN apt-get update \
    && apt-get install -y --no-install-recommends git build-essential patch \
    && rm -rf /var/lib/apt/lists/* \
    && python -m pip install "pytest>=8" \
    && useradd --create-home --uid 1000 agent \
    && mkdir /workspace \
    && chown agent:agent /workspace

USER 1000:1000
WORKDIR /workspace

CMD ["python", "-m", "pytest", "-q"]
