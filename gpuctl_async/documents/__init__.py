"""gpuctl YAML documents: marshmallow schemas and the parsing entry point."""

from gpuctl_async.documents.parser import (
    ALL_KINDS,
    JOB_KINDS,
    MAX_DOCUMENT_BYTES,
    ParsedDocument,
    parse_document,
    validate_document,
)

__all__ = ["ALL_KINDS", "JOB_KINDS", "MAX_DOCUMENT_BYTES", "ParsedDocument", "parse_document",
           "validate_document"]
