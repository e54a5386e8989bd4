"""Paths shared by routes in several modules, so that no route shadows another.

``/api/v1/jobs/batch`` is the batch-create route, so ``batch`` is not a job name (the job
spec refuses it) and ``{jobId}`` does not match it: GET/DELETE there answer 405 with
``Allow: POST``. The job feed lives outside ``/api/v1/jobs/`` so that every other valid job
name (``ws`` included) reaches its job.
"""

from gpuctl_async.documents.jobs import RESERVED_JOB_NAMES

JOB_PATH = "/api/v1/jobs/{jobId:(?!(?:%s)$)[^{}/]+}" % "|".join(RESERVED_JOB_NAMES)
JOB_FEED_PATH = "/api/v1/jobs-feed/ws"
