"""Schemas of the four job kinds: training, inference, notebook, compute.

Loaded documents use the canonical camelCase keys with every default filled in; that dict is
what ``gpuctl_async.k8s.manifests`` consumes.
"""

from __future__ import annotations

from typing import Any

from marshmallow import ValidationError, fields, validate, validates_schema

from gpuctl_async.kuberules.naming import DNS1123_LABEL_MAX, dns1123_label_errors
from gpuctl_async.documents.base import StrictSchema, defaults_of
from gpuctl_async.documents.hostpaths import (
    SYSTEM_DIRECTORIES_ONLY,
    HostPathError,
    HostPathPolicy,
    normalise_host_path,
)
from gpuctl_async.documents.fields import (
    BoundedList,
    CpuQuantity,
    EnvVars,
    MemoryQuantity,
    Text,
    WholeNumber,
    dns_label,
    dns_subdomain,
    selectable_label_value,
    validator,
)

SERVICE_PREFIX = "svc-"
# The Service is named svc-<name>, and it must be a DNS-1123 label too.
JOB_NAME_MAX = DNS1123_LABEL_MAX - len(SERVICE_PREFIX)
# StatefulSet pods carry the label controller-revision-hash=<name>-<hash of up to 10 chars>.
NOTEBOOK_NAME_MAX = DNS1123_LABEL_MAX - 11
PRIORITIES = ("high", "medium", "low")
DEFAULT_PRIORITY = "medium"
DEFAULT_NAMESPACE = "default"
DEFAULT_POOL = "default"
DEFAULT_VERSION = "v0.1"
MAX_GPUS = 8
DEFAULT_SERVICE_PORT = 8000
NOTEBOOK_PORT = 8888
MAX_WORKDIRS = 64
# ``/api/v1/jobs/batch`` is the batch-create route: a job of that name could not be read.
RESERVED_JOB_NAMES = ("batch",)


def job_name_errors(name: str) -> list[str]:
    if name in RESERVED_JOB_NAMES:
        return [f"'{name}' is reserved: /api/v1/jobs/{name} is another route"]
    if len(name) > JOB_NAME_MAX:
        return [f"must be no more than {JOB_NAME_MAX} characters, so that its Service "
                f"name {SERVICE_PREFIX}<name> fits in {DNS1123_LABEL_MAX}"]
    return dns1123_label_errors(name)


def gpu_count(value: int) -> None:
    if value < 0:
        raise ValidationError("GPU count cannot be negative")
    if value > MAX_GPUS:
        raise ValidationError(f"GPU count cannot exceed {MAX_GPUS}")


def non_blank(value: str) -> None:
    if not value or value != value.strip() or any(c.isspace() for c in value):
        raise ValidationError("must be non-empty and contain no whitespace")


class JobSchema(StrictSchema):
    aliases = {"batch_size": "batchSize"}

    name = Text(required=True, validate=validator(job_name_errors))
    namespace = Text(load_default=DEFAULT_NAMESPACE, validate=dns_label)
    priority = Text(load_default=DEFAULT_PRIORITY, validate=validate.OneOf(PRIORITIES))
    description = Text()
    # Accepted like the original, not used by any controller.
    epochs = WholeNumber(validate=validate.Range(min=1))
    batchSize = WholeNumber(validate=validate.Range(min=1))


class EnvironmentSchema(StrictSchema):
    aliases = {"image_pull_secret": "imagePullSecret"}

    image = Text(required=True, validate=non_blank)
    imagePullSecret = Text(validate=dns_subdomain)
    command = BoundedList(Text(), load_default=list)
    args = BoundedList(Text(), load_default=list)
    env = EnvVars(load_default=list)


class ResourcesSchema(StrictSchema):
    aliases = {
        "accelerator_count": "gpu",
        "gpu_type": "gpuType",
        "gpu-type": "gpuType",
        "gpu_share": "gpuShare",
    }

    pool = Text(load_default=DEFAULT_POOL, validate=selectable_label_value)
    gpu = WholeNumber(load_default=0, validate=gpu_count)
    gpuType = Text(validate=selectable_label_value)
    cpu = CpuQuantity(required=True)
    memory = MemoryQuantity(required=True)
    gpuShare = Text()  # accepted like the original, not used


class ServiceSchema(StrictSchema):
    aliases = {"health_check": "healthCheck"}

    replicas = WholeNumber(load_default=1, validate=validate.Range(min=1))
    port = WholeNumber(load_default=DEFAULT_SERVICE_PORT, validate=validate.Range(min=1, max=65535))
    healthCheck = Text(validate=validate.Regexp(
        r"^/\S*$", error="must be an HTTP path starting with '/'"))
    timeout = Text()  # accepted like the original, not used


class NotebookServiceSchema(StrictSchema):
    """A notebook is one StatefulSet pod listening on 8888; only the Service port is free."""

    replicas = WholeNumber(load_default=1, validate=validate.Equal(
        1, error="a notebook runs exactly 1 replica"))
    port = WholeNumber(load_default=NOTEBOOK_PORT, validate=validate.Range(min=1, max=65535))
    timeout = Text()


class HostPath(Text):
    """An absolute node path, loaded normalised (``//data/./x/`` → ``/data/x``), so that the
    policy check, the duplicate check and the manifest all see the same path."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        try:
            return normalise_host_path(super()._deserialize(value, attr, data, **kwargs))
        except HostPathError as exc:
            raise ValidationError(str(exc)) from None


class WorkdirSchema(StrictSchema):
    path = HostPath(required=True)


def unique_paths(workdirs: list[dict]) -> None:
    paths = [workdir["path"] for workdir in workdirs]
    duplicates = sorted({path for path in paths if paths.count(path) > 1})
    if duplicates:
        raise ValidationError(f"each path may be mounted once: {', '.join(duplicates)}")


class StorageSchema(StrictSchema):
    workdirs = BoundedList(fields.Nested(WorkdirSchema), max_items=MAX_WORKDIRS,
                           load_default=list, validate=unique_paths)


class ModelSchema(StrictSchema):
    """The inference ``model`` block: accepted like the original, not used."""

    source = Text(load_default="model-registry")
    name = Text(required=True)
    version = Text(required=True)
    format = Text(load_default="safetensors")
    cache = fields.Boolean(load_default=True)


class JobDocumentSchema(StrictSchema):
    """``host_paths`` is the service's hostPath policy (from its settings); the schema module
    itself holds no settings."""

    def __init__(self, *, host_paths: HostPathPolicy = SYSTEM_DIRECTORIES_ONLY, **kwargs: Any):
        super().__init__(**kwargs)
        self.host_paths = host_paths

    kind = Text(required=True)
    version = Text(load_default=DEFAULT_VERSION)
    job = fields.Nested(JobSchema, required=True)
    environment = fields.Nested(EnvironmentSchema, required=True)
    resources = fields.Nested(ResourcesSchema, required=True)
    storage = fields.Nested(StorageSchema, load_default=defaults_of(StorageSchema))

    @validates_schema(skip_on_field_errors=False)
    def _host_paths_allowed(self, data: dict, **kwargs: Any) -> None:
        # Runs even when other fields failed, so every problem is reported at once; what
        # failed its own validation (a whole storage block, a path) is absent here.
        workdirs = data.get("storage", {}).get("workdirs", [])
        problems = {index: {"path": [reason]} for index, workdir in enumerate(workdirs)
                    if "path" in workdir and (reason := self.host_paths.problem(workdir["path"]))}
        if problems:
            raise ValidationError({"storage": {"workdirs": problems}})


class TrainingSchema(JobDocumentSchema):
    pass


class InferenceSchema(JobDocumentSchema):
    service = fields.Nested(ServiceSchema, load_default=defaults_of(ServiceSchema))
    model = fields.Nested(ModelSchema)


class NotebookSchema(JobDocumentSchema):
    service = fields.Nested(NotebookServiceSchema, load_default=defaults_of(NotebookServiceSchema))

    @validates_schema(skip_on_field_errors=True)
    def _name_fits_revision_label(self, data: dict, **kwargs: Any) -> None:
        if len(data["job"]["name"]) > NOTEBOOK_NAME_MAX:
            raise ValidationError({"job": {"name": [
                f"must be no more than {NOTEBOOK_NAME_MAX} characters for a notebook, so that "
                f"its pods' controller-revision-hash label fits in {DNS1123_LABEL_MAX}"]}})


class ComputeSchema(JobDocumentSchema):
    # ``service: null`` loads the defaults (StrictSchema), where the original crashed.
    service = fields.Nested(ServiceSchema, load_default=defaults_of(ServiceSchema))


JOB_SCHEMAS: dict[str, type[JobDocumentSchema]] = {
    "training": TrainingSchema,
    "inference": InferenceSchema,
    "notebook": NotebookSchema,
    "compute": ComputeSchema,
}
