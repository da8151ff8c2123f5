# The turnwise project image (CPU): the package with every CPU extra, its tests and the CLI, plus
# the system packages of every env family (Chromium, Xvfb, bubblewrap, the text engines' build
# tools) from scripts/install-system-deps.sh, so the image stays in step with that list.
#
# Build and run from the repository root:
#   docker build -f docker/turnwise.Dockerfile -t turnwise .
#   docker run --rm turnwise make demo
#   docker run --rm turnwise make test
# bubblewrap sandboxes need `--security-opt seccomp=unconfined` (or --privileged) to create
# namespaces inside a container.
FROM python:3.11-slim-bookworm

ENV PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    TURNWISE_CHROMIUM=/usr/bin/chromium

WORKDIR /opt/turnwise
COPY . .

# The extras match the Makefile's EXTRAS (tests/test_docker.py checks it); torch comes from the
# CPU wheel index, pinned as the Makefile pins it, so no CUDA packages are pulled.
RUN apt-get update \
    && apt-get install -y --no-install-recommends make \
    && bash scripts/install-system-deps.sh all \
    && rm -rf /var/lib/apt/lists/* \
    && python -m pip install --index-url https://download.pytorch.org/whl/cpu "torch==2.13.0" \
    && python -m pip install -e ".[dev,text,agents,web,gui,swe,social,ray,train]"

CMD ["turnwise", "--help"]
