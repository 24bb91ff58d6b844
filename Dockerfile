# One image for the API and the worker; the command picks the role:
#   docker run -p 8000:8000 mnist-service                 the API (the default command)
#   docker run mnist-service mnist-service worker         a training worker
#   docker run mnist-service mnist-service fetch-data     the MNIST files into MNIST_DATA_DIR (a volume)
# PyTorch is the CPU build unless TORCH_INDEX_URL names an index with CUDA builds, e.g. PyPI's, whose Linux
# wheel is the CUDA one:  docker build --build-arg TORCH_INDEX_URL=https://pypi.org/simple -t mnist-service:cuda .

FROM python:3.11-slim AS build

ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
ENV PIP_DISABLE_PIP_VERSION_CHECK=1

# Everything goes into one virtual environment, copied whole into the runtime stage.
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH

# torch first, from the chosen index, in a layer of its own that a change to the code does not rebuild;
# installing the project next finds its torch==2.13.0 requirement already met.
RUN pip install --no-cache-dir --index-url "$TORCH_INDEX_URL" torch==2.13.0

WORKDIR /src
COPY pyproject.toml README.md ./
COPY service service
COPY worker worker
RUN pip install --no-cache-dir .


FROM python:3.11-slim

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
# Liveness of the API. The worker's containers run `mnist-service healthcheck --worker` instead (compose).
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 CMD ["mnist-service", "healthcheck"]
CMD ["mnist-service", "api", "--host", "0.0.0.0"]
