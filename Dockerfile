# One image for the API and the worker; the command picks the role:
#   docker run -p 127.0.0.1:8000:8000 mnist-service          the API (the default command)
#   docker run mnist-service mnist-service worker            a training worker
#   docker run mnist-service mnist-service fetch-data        the MNIST files into MNIST_DATA_DIR (a volume)
# PyTorch is the CPU build unless TORCH_INDEX_URL names an index with CUDA builds, e.g. PyPI's, whose Linux
# wheel is the CUDA one:  docker build --build-arg TORCH_INDEX_URL=https://pypi.org/simple -t mnist-service:cuda .
#
# Three more build arguments exist for machines that cannot reach Docker Hub or PyTorch's index (the project's
# own `make test-docker` uses them; a user needs none of them): BASE_IMAGE, a Debian-like image with python3
# (3.11) and its venv module instead of python:3.11-slim; TORCH_WHEELS, an image whose root holds wheels that
# pip may take torch from (e.g. a CPU wheel, next to TORCH_INDEX_URL=https://pypi.org/simple); and the build
# secret `ca`, a CA bundle for pip (`--secret id=ca,src=/etc/ssl/certs/ca-certificates.crt`). All three are
# used in the build stage only: the final image holds no trace of them.
# No `# syntax=` line: the Dockerfile frontend built into the engine (Docker 20.10 or later) is enough, and
# nothing has to be pulled to read this file.

ARG BASE_IMAGE=python:3.11-slim
ARG TORCH_WHEELS=scratch

# Extra wheels for pip, mounted into the build stage only; empty unless TORCH_WHEELS names an image.
FROM ${TORCH_WHEELS} AS wheels

FROM ${BASE_IMAGE} AS build

ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1

# Everything goes into one virtual environment, copied whole into the runtime stage.
RUN python3 -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH

# torch first, from the chosen index, in a layer of its own that a change to the code does not rebuild;
# installing the project next finds its torch==2.13.0 requirement already met.
RUN --mount=type=bind,from=wheels,target=/wheels \
    --mount=type=secret,id=ca \
    if [ -s /run/secrets/ca ]; then export PIP_CERT=/run/secrets/ca; fi \
    && pip install --no-cache-dir --index-url "$TORCH_INDEX_URL" --find-links /wheels torch==2.13.0

WORKDIR /src
COPY pyproject.toml README.md ./
COPY service service
COPY worker worker
# Then the project and its other requirements from PyPI. What only building needs goes: pip (the service never
# installs anything), and torch's C++ headers, CMake files and C++ test programs, which only compiling
# against torch or testing torch itself would use (about 150 MB).
RUN --mount=type=secret,id=ca \
    if [ -s /run/secrets/ca ]; then export PIP_CERT=/run/secrets/ca; fi \
    && pip install --no-cache-dir . \
    && rm -rf /opt/venv/lib/python3.*/site-packages/torch/include /opt/venv/lib/python3.*/site-packages/torch/share \
              /opt/venv/lib/python3.*/site-packages/torch/test \
    && pip uninstall --yes pip


FROM ${BASE_IMAGE}

COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    MNIST_DATA_DIR=/data \
    MNIST_MODEL_DIR=/models

# A user of its own, owning the two volume mount points: a fresh named volume takes the owner of the
# directory it is mounted on, so the service can write its data and models without root. USER is numeric,
# so that a runtime can check it is not root without looking the name up.
RUN groupadd --gid 10001 mnist \
    && useradd --create-home --no-log-init --uid 10001 --gid mnist mnist \
    && mkdir /data /models \
    && chown mnist:mnist /data /models
USER 10001:10001
WORKDIR /home/mnist

EXPOSE 8000
# Liveness of the API. The worker's containers run `mnist-service healthcheck --worker` instead (compose). A check
# starts a Python process that imports the service: seconds on a busy two-core machine, hence the timeout.
HEALTHCHECK --interval=30s --timeout=30s --start-period=30s --retries=3 CMD ["mnist-service", "healthcheck"]
CMD ["mnist-service", "api", "--host", "0.0.0.0"]
