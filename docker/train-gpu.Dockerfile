# The GPU training image: CUDA, vLLM (generation inside the training loop) and accelerate
# (multi-GPU launches), with the text worlds to train on.
#
# Build and run from the repository root (NVIDIA Container Toolkit on the host):
#   docker build -f docker/train-gpu.Dockerfile -t turnwise-train .
#   docker run --rm --gpus all -v /path/to/checkpoint:/model turnwise-train \
#     turnwise train loop --model /model --backend vllm --device cuda --dtype bfloat16 \
#       --env turnwise/ALFWorldGen-v0 --out /runs/loop
#   docker run --rm --gpus all -v /path/to/checkpoint:/model turnwise-train \
#     torchrun --nproc-per-node 8 -m turnwise train grpo --model /model --fsdp --device cuda ...
FROM nvidia/cuda:12.8.1-cudnn-runtime-ubuntu24.04

ENV DEBIAN_FRONTEND=noninteractive \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH

RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 python3-venv python3-dev make \
    && rm -rf /var/lib/apt/lists/* \
    && python3 -m venv /opt/venv

WORKDIR /opt/turnwise
COPY . .

# vLLM brings the CUDA build of torch it was built against; the extras add accelerate, peft,
# the trainers' plotting and logging, and the text engines.
RUN bash scripts/install-system-deps.sh text \
    && rm -rf /var/lib/apt/lists/* \
    && python -m pip install -e ".[vllm,train,text]"

CMD ["turnwise", "train", "--help"]
