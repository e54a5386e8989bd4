FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1

WORKDIR /app
COPY setup.cfg pyproject.toml README.md ./
COPY gpuctl_async ./gpuctl_async
COPY config/gpuctl.yaml ./config/gpuctl.yaml
RUN pip install . && useradd --uid 10001 --no-create-home --shell /usr/sbin/nologin gpuctl

USER 10001
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=3s --start-period=10s \
    CMD ["python", "-c", "import urllib.request,sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/health', timeout=2).status != 200)"]
ENTRYPOINT ["gpuctl-async"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8000"]
