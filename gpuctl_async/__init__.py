"""gpuctl-async: an asynchronous REST server for running GPU work on Kubernetes."""

__version__ = "0.1.0"
