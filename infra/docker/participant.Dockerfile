# The participant image: one image serves every participant; FSCOPE_PARTICIPANT_INDEX says which.
# Build from the repository root:  docker build -f infra/docker/participant.Dockerfile -t fscope-participant .
# A TensorFlow participant as well:  add --build-arg WITH_TENSORFLOW=1, and run it with trainer.backend=tensorflow.
FROM python:3.11-slim
ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
# The CPU build of torch: a tenth of the size of the default CUDA build.
RUN pip install --index-url https://download.pytorch.org/whl/cpu "torch>=2.1"
COPY libs/translation libs/translation
COPY libs/fscore libs/fscore
COPY services/participant services/participant
RUN pip install "./libs/translation[torch]" "./libs/fscore[torch,kafka]" ./services/participant
ARG WITH_TENSORFLOW=0
RUN if [ "$WITH_TENSORFLOW" = "1" ]; then pip install "tensorflow-cpu>=2.16" "keras>=3"; fi
COPY examples /course
RUN useradd --create-home fscope
USER fscope
ENV FSCOPE_CONFIG=/course/digits_fedavg.yaml
ENTRYPOINT ["fscope-participant"]
CMD ["serve"]
