# ADRPO Studio: one image for the web process (`adrpo serve`) and GPU workers (`adrpo worker`).
#   docker build -t adrpo-studio .
#   docker run --gpus all -p 7860:7860 -v adrpo-data:/data adrpo-studio            # all-in-one, embedded defaults
#   docker run --gpus all -v adrpo-data:/data -e ADRPO_DATABASE_URL=... -e ADRPO_BROKER_URL=... adrpo-studio worker
# compose.yaml wires PostgreSQL, Redis, the web process and N workers.
ARG CUDA_IMAGE=nvidia/cuda:12.8.1-cudnn-runtime-ubuntu24.04
FROM ${CUDA_IMAGE}

# torch is pinned in pyproject.toml; install the CUDA wheel of that version first so that pip does not
# resolve another one (TORCH_INDEX picks the CUDA flavour; use .../whl/cpu for a CPU-only image).
ARG TORCH_VERSION=2.13.0
ARG TORCH_INDEX=https://download.pytorch.org/whl/cu128

ENV DEBIAN_FRONTEND=noninteractive \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH \
    ADRPO_DATA_DIR=/data \
    HF_HOME=/data/hf

RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 python3-venv python3-dev build-essential ca-certificates tini \
    && rm -rf /var/lib/apt/lists/* \
    && python3 -m venv $VIRTUAL_ENV \
    && pip install --upgrade pip

RUN pip install "torch==${TORCH_VERSION}" --index-url "${TORCH_INDEX}"

WORKDIR /app
COPY pyproject.toml README.md ./
COPY adrpo_engine ./adrpo_engine
COPY worker ./worker
COPY app ./app
COPY migrations ./migrations
COPY alembic.ini ./
RUN pip install ".[tensorboard,mlflow,wandb,trackio]" && adrpo --help >/dev/null

RUN useradd --create-home --uid 1000 adrpo && mkdir -p /data && chown adrpo:adrpo /data
USER adrpo
VOLUME ["/data"]
EXPOSE 7860

# tini reaps and forwards signals, so `docker stop` reaches adrpo serve, which stops its worker.
ENTRYPOINT ["tini", "--", "adrpo"]
# 0.0.0.0 needs ADRPO_AUTH_USER + ADRPO_AUTH_PASSWORD in the environment (or an explicit --insecure).
CMD ["serve", "--host", "0.0.0.0", "--port", "7860"]
