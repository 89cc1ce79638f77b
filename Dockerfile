# Latent Lab as a hosted server: `docker build -t latent-lab .` then
#   docker run -p 8501:8501 -v latent-lab-data:/data -e LATENT_LAB_PRESENTER_SECRET=... latent-lab
# Hosted mode is on (workspaces, quotas, share links); the runs, uploads and data caches live in the /data volume.
# Put it behind a TLS proxy with sticky sessions (README: Deploy). CPU only; a GPU host needs the CUDA build of
# torch instead of requirements.txt's CPU pin.
FROM python:3.11-slim-bookworm

RUN apt-get update -qq \
    && apt-get install -y -qq --no-install-recommends make dataset-fashion-mnist \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /app
COPY requirements.txt pyproject.toml ./
COPY scripts scripts
# The pinned packages first, in their own layer: a code change does not reinstall torch.
RUN python -m venv .venv && .venv/bin/pip install --no-cache-dir --quiet -r requirements.txt
COPY . .
RUN bash scripts/setup.sh && rm -rf /root/.cache/pip

ENV LATENT_LAB_MODE=hosted \
    LATENT_LAB_RUNS=/data/runs \
    LATENT_LAB_DATA=/data/cache \
    NUMBA_CACHE_DIR=/data/cache/numba \
    PYTHONUNBUFFERED=1
VOLUME /data
EXPOSE 8501
HEALTHCHECK --interval=30s --timeout=5s --start-period=90s --retries=3 \
    CMD .venv/bin/python -c "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:8501/_stcore/health', timeout=4).status != 200)"
CMD [".venv/bin/python", "-m", "streamlit", "run", "app.py", "--server.address", "0.0.0.0", "--server.port", "8501", \
     "--server.headless", "true", "--browser.gatherUsageStats", "false"]
