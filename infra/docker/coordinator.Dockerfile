# The coordinator image: numpy aggregation, no torch, no TensorFlow.
# Build from the repository root:  docker build -f infra/docker/coordinator.Dockerfile -t fscope-coordinator .
FROM python:3.11-slim
ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY libs/translation libs/translation
COPY libs/fscore libs/fscore
COPY services/coordinator services/coordinator
RUN pip install ./libs/translation "./libs/fscore[kafka]" ./services/coordinator
COPY examples /course
RUN useradd --create-home fscope && mkdir /runs && chown fscope /runs
USER fscope
# Configured by the environment: FSCOPE_CONFIG, FSCOPE_SET, KAFKA_BOOTSTRAP_SERVERS, FSCOPE_KAFKA_SASL_*.
ENV FSCOPE_CONFIG=/course/digits_fedavg.yaml
ENTRYPOINT ["fscope-coordinator"]
CMD ["serve", "--output", "/runs/coordinator"]
