# syntax=docker/dockerfile:1
# The controller image: `rollouts` installed from its wheel on a slim Python, run as non-root.
#
#   docker build -t ghcr.io/rollouts-dev/rollouts:0.1.0 .
#   docker run --rm ghcr.io/rollouts-dev/rollouts:0.1.0 version
#   docker run --rm -v ~/.kube/config:/kube/config:ro -p 8080:8080 \
#       ghcr.io/rollouts-dev/rollouts:0.1.0 controller --kubeconfig /kube/config \
#       --metrics-address=:8080
#
# In a cluster the chart (charts/rollouts) runs it with the pod's service account.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# --- build: the project's wheel and a wheel for every dependency ------------------------------
FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY rollouts ./rollouts
RUN pip wheel --wheel-dir /wheels .

# --- runtime: no compilers, no sources, no build tools -----------------------------------------
FROM ${PYTHON_IMAGE}
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN groupadd --system --gid 65532 rollouts \
    && useradd --system --uid 65532 --gid 65532 --no-create-home \
       --home-dir /nonexistent --shell /usr/sbin/nologin rollouts
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    pip install --no-index --find-links=/wheels rollouts
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["rollouts"]
CMD ["controller", "--metrics-address=:8080"]
