# Production image: CUDA build of torch (PyPI's default Linux wheel) and the pyannote extra.
# The same image runs the API (`ovozly api`), the migrations, the one-shot model fetch
# (`ovozly models fetch`) and the GPU worker. Pinned to a patch release of Python on Debian 12.
FROM python:3.11.11-slim-bookworm

# Nothing in this image reaches the Hugging Face Hub at run time (HF_HUB_OFFLINE=1): models
# live in MODELS_DIR, a volume that only the compose `models` service writes, and that
# service alone turns the switch off. Workers never download.
ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 \
    OVOZLY_ENV=production OVOZLY_DATA_DIR=/var/lib/ovozly MODELS_DIR=/models \
    HF_HUB_OFFLINE=1 HF_HUB_DISABLE_TELEMETRY=1
RUN apt-get update \
    && apt-get install -y --no-install-recommends ffmpeg libsndfile1 \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --create-home --uid 10001 ovozly \
    && mkdir -p /models /var/lib/ovozly \
    && chown ovozly:ovozly /models /var/lib/ovozly

WORKDIR /srv/ovozly
COPY requirements.lock pyproject.toml README.md alembic.ini ./
RUN pip install 'setuptools<81' wheel \
    && pip install --no-deps -r requirements.lock
COPY app ./app
COPY alembic ./alembic
# The pyannote extra resolves torchaudio for the CUDA torch installed above.
RUN pip install --no-deps --no-build-isolation . \
    && pip install 'pyannote.audio>=4.0,<4.1'

USER ovozly
EXPOSE 8000
CMD ["ovozly", "api"]
