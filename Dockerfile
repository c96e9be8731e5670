# syntax=docker/dockerfile:1
#
# One image for every llmforge service: the API, the workers, the one-shot
# migration and the MLflow server (docker-compose.yml picks the command).
#
#   docker build -t llmforge .
#   docker build -t llmforge:cuda --build-arg TORCH_INDEX_URL=https://download.pytorch.org/whl/cu128 .
#
# torch is pinned exactly in pyproject.toml. On plain PyPI that version is a
# multi-GB CUDA build, so torch's own index is added: its "+cpu" local version
# satisfies the same "==" pin and sorts above the PyPI one, so the CPU wheel wins.
# For GPU workers point TORCH_INDEX_URL at a CUDA index (see above).
FROM python:3.11-slim

ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore

WORKDIR /src

# Dependencies first, from pyproject.toml alone (with a stub package), so the
# heavy layer (torch, mlflow) is rebuilt only when the dependencies change.
COPY pyproject.toml README.md ./
RUN mkdir llmforge && touch llmforge/__init__.py \
    && pip install --extra-index-url "${TORCH_INDEX_URL}" . \
    && pip uninstall -y llmforge \
    && rm -rf llmforge build ./*.egg-info

# Then the package itself (no dependency resolution: they are all installed).
COPY llmforge ./llmforge
RUN pip install --no-deps . \
    && rm -rf /src

# Unprivileged user. Every directory a service writes to exists in the image
# and belongs to that user, so named volumes mounted on them start out
# writable: /data (LLMFORGE_HOME, artifacts under /data/artifacts) and
# /mlartifacts (the MLflow server's artifact destination).
RUN groupadd --system --gid 10001 llmforge \
    && useradd --system --uid 10001 --gid llmforge --create-home --home-dir /home/llmforge llmforge \
    && mkdir -p /data/artifacts /mlartifacts \
    && chown -R llmforge:llmforge /data /mlartifacts

ENV LLMFORGE_HOME=/data
# Declared after the chown: changes to /data after VOLUME would be discarded.
VOLUME /data

USER llmforge
WORKDIR /home/llmforge

EXPOSE 8000

# The API; docker-compose.yml overrides this for the worker, migrate and mlflow services.
# Binding 0.0.0.0 inside the container is needed for the port mapping; publish it on
# the host's loopback only (docker run -p 127.0.0.1:8000:8000) unless TLS is in front.
CMD ["llmforge", "api", "--host", "0.0.0.0"]
