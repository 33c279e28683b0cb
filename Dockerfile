# Production image: CUDA build of torch (PyPI's default Linux wheel) and the pyannote extra.
# The same image runs the API (`ovozly api`), the migrations and the GPU worker.
FROM python:3.11-slim-bookworm

ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 \
    OVOZLY_ENV=production OVOZLY_DATA_DIR=/var/lib/ovozly HF_HUB_OFFLINE=1
RUN apt-get update \
    && apt-get install -y --no-install-recommends ffmpeg libsndfile1 \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --create-home --uid 10001 ovozly

WORKDIR /srv/ovozly
COPY requirements.lock pyproject.toml README.md alembic.ini ./
RUN pip install 'setuptools<81' wheel \
    && pip install --no-deps -r requirements.lock
COPY app ./app
COPY alembic ./alembic
# The pyannote extra resolves torchaudio for the CUDA torch installed above.
RUN pip install --no-deps --no-build-isolation . \
    && pip install 'pyannote.audio>=4.0' \
    && python -m app.warmup

USER ovozly
EXPOSE 8000
CMD ["ovozly", "api"]
