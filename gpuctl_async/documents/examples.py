"""One small valid document per kind, for the OpenAPI docs and the tests.

They name only what the default simulated topology (``serve --simulate``) has, so that each
works as given there: pools ``training-pool`` (A100) and ``inference-pool`` (T4), and the
``default`` pool (an L4 node without a pool label)."""

from __future__ import annotations

TRAINING = """\
kind: training
version: v0.1
job:
  name: resnet-train
  namespace: team-a
  priority: high
  description: ResNet-50 on ImageNet
environment:
  image: pytorch/pytorch:2.3.0-cuda12.1-cudnn8-runtime
  command: ["python", "train.py"]
  args: ["--epochs", "10"]
  env:
    - name: NCCL_DEBUG
      value: INFO
resources:
  pool: training-pool
  gpu: 2
  gpuType: a100
  cpu: 8
  memory: 32Gi
storage:
  workdirs:
    - path: /data/imagenet
"""

INFERENCE = """\
kind: inference
job:
  name: llama-serve
environment:
  image: vllm/vllm-openai:latest
  args: ["--model", "/models/llama"]
service:
  replicas: 2
  port: 8000
  healthCheck: /health
resources:
  gpu: 1
  cpu: 4
  memory: 16Gi
"""

NOTEBOOK = """\
kind: notebook
job:
  name: alice-notebook
  namespace: team-alice
environment:
  image: jupyter/base-notebook:latest
service:
  port: 8888
resources:
  gpu: 1
  cpu: 2
  memory: 8Gi
storage:
  workdirs:
    - path: /home/jovyan/work
"""

COMPUTE = """\
kind: compute
job:
  name: web-api
  priority: low
environment:
  image: nginx:1.27
  env:
    LOG_LEVEL: debug
service:
  replicas: 1
  port: 80
  healthCheck: /
resources:
  cpu: 500m
  memory: 256Mi
"""

POOL = """\
kind: pool
pool:
  name: training-pool
  description: A100 nodes for training
nodes:
  train-a100-0:
    gpuType: a100
  train-a100-1:
    gpuType: a100
"""

QUOTA = """\
kind: quota
quota:
  name: team-quota
  description: Team limits
namespace:
  team-a:
    cpu: 16
    memory: 64Gi
    gpu: 4
default:
  cpu: 4
  memory: 16Gi
  gpu: 0
"""

JOB_EXAMPLES = {"training": TRAINING, "inference": INFERENCE, "notebook": NOTEBOOK,
                "compute": COMPUTE}
EXAMPLES = {**JOB_EXAMPLES, "pool": POOL, "quota": QUOTA}
