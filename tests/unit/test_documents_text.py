"""parse_document: the YAML text itself, the kind, and the shape of the error."""

from __future__ import annotations

import pytest

from gpuctl_async.errors import ValidationFailed
from gpuctl_async.documents import JOB_KINDS, parse_document

from .helpers import details, failure

VALID = ("kind: training\njob: {name: a}\nenvironment: {image: x}\n"
         "resources: {cpu: 1, memory: 1Gi}\n")


def test_syntax_error_carries_line_and_column():
    error = failure(VALID + "storage: [unclosed\n")
    [message] = error.details["yamlContent"]
    # libyaml's wording ("did not find expected ...") or the pure-Python parser's.
    assert message.startswith("line 6, column 1: while parsing a flow sequence, ")
    assert "expected ',' or ']'" in message
    assert error.message.startswith("YAML parsing error: line 6, column 1:")


def test_bad_indentation_is_located():
    message = details("kind: training\njob:\n  name: a\n bad: 1\n")["yamlContent"][0]
    assert message.startswith("line 4, column 2: ")


def test_duplicate_keys_are_refused():
    assert details(VALID + "resources: {cpu: 2, memory: 2Gi}\n") == {"yamlContent": [
        "line 5, column 1: while constructing a mapping, found duplicate key 'resources'"]}
    assert details("kind: training\njob: {name: a, name: b}\n") == {"yamlContent": [
        "line 2, column 16: while constructing a mapping, found duplicate key 'name'"]}


def test_merge_keys_still_work():
    text = ("base: &base {cpu: 1, memory: 1Gi}\n" + VALID.replace(
        "resources: {cpu: 1, memory: 1Gi}", "resources: {<<: *base, cpu: 2}"))
    assert details(text) == {"base": ["Unknown field."]}
    text = VALID.replace("resources: {cpu: 1, memory: 1Gi}",
                         "resources: {<<: {cpu: 1, memory: 1Gi}, cpu: 2}")
    assert parse_document(text).spec["resources"]["cpu"] == "2"


def test_multiple_documents_are_refused():
    error = failure(VALID + "---\n" + VALID)
    assert error.message == "YAML parsing error: only one document is allowed"
    assert error.details == {"yamlContent": [
        "line 5, column 1: only one YAML document is allowed, found another"]}


def test_a_single_leading_document_marker_is_fine():
    assert parse_document("---\n" + VALID).kind == "training"


def test_oversized_text_is_refused_before_parsing():
    error = failure(VALID + "#" * 300, max_bytes=len(VALID) + 100)
    assert error.message == "YAML document too large"
    assert error.details == {"yamlContent": [f"must be at most {len(VALID) + 100} bytes, "
                                             f"got {len(VALID) + 300}"]}


def test_size_limit_counts_bytes_not_characters():
    text = VALID + "# " + "é" * 60 + "\n"
    with pytest.raises(ValidationFailed):
        parse_document(text, max_bytes=len(text) + 10)


@pytest.mark.parametrize("text", ["[1, 2]", "just text", "42", "", "---\n", "kind"])
def test_non_mapping_is_refused(text):
    error = failure(text)
    assert error.message == "Invalid YAML: the document must be a mapping"
    assert error.details == {"yamlContent": ["must be a YAML mapping with a 'kind' field"]}


def test_text_must_be_a_string():
    with pytest.raises(ValidationFailed) as caught:
        parse_document(b"kind: training")
    assert caught.value.details == {"yamlContent": ["must be a string of YAML"]}


def test_deep_nesting_is_a_validation_error():
    assert details("[" * 5000 + "]" * 5000) == {"yamlContent": [
        "line 1, column 65: brackets nested deeper than 64 levels"]}


def test_nesting_past_the_bound_is_refused_with_its_position():
    # The document's mapping is level 1, so the 20th bracket is the 21st level.
    text = "kind: training\njob: " + "[" * 25 + "]" * 25
    assert details(text) == {"yamlContent": ["line 2, column 25: nested deeper than 20 levels"]}
    block = "kind: training\njob:\n" + "".join("  " * i + "- \n" for i in range(1, 30))
    assert details(block)["yamlContent"][0].endswith("nested deeper than 20 levels")


def test_alias_expansion_counts_against_the_node_bound():
    bomb = "kind: training\na: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{n}: &{n} [{', '.join([f'*{p}'] * 10)}]\n" for p, n in zip("abcd", "bcde"))
    assert details(bomb) == {"yamlContent": [
        "line 6, column 8: more than 20000 nodes (aliases count as what they expand to)"]}


def test_node_count_is_bounded():
    assert details("kind: training\nx: [" + "1," * 25_000 + "]")["yamlContent"][0].endswith(
        "more than 20000 nodes (aliases count as what they expand to)")


def test_an_integer_with_thousands_of_digits_is_refused_not_a_crash():
    assert details("kind: training\njob: {name: 1" + "0" * 5000 + "}") == {"yamlContent": [
        "line 2, column 13: integer longer than 4000 digits"]}


@pytest.mark.parametrize("text", ["job: {name: a}", "kind:\njob: {name: a}"])
def test_missing_kind(text):
    error = failure(text)
    assert error.message == "Invalid YAML: missing 'kind' field"
    assert error.details == {"kind": ["Missing data for required field."]}


@pytest.mark.parametrize("kind", ["unknown", "Training", 5])
def test_unsupported_kind(kind):
    error = failure({"kind": kind})
    assert error.message == f"Unsupported kind: {kind}"
    assert error.details == {"kind": [
        "Must be one of: training, inference, notebook, compute, pool, quota."]}


def test_allowed_kinds_restrict_the_route():
    error = failure("kind: quota\nquota: {name: q}\ndefault: {cpu: 1}\n", allowed_kinds=JOB_KINDS)
    assert error.message == "Unsupported kind: quota"
    assert error.details == {"kind": ["Must be one of: training, inference, notebook, compute."]}


def test_resource_is_an_alias_of_pool():
    parsed = parse_document("kind: resource\npool: {name: p}\n")
    assert parsed.kind == "pool"
    assert parsed.spec["kind"] == "pool"


def test_yaml_tags_beyond_safe_loader_are_refused():
    assert "yamlContent" in details("kind: !!python/object:os.system x\n")


def test_summary_names_the_first_problem_and_counts_the_rest():
    error = failure({"kind": "training", "job": {"name": "Bad_Name"}, "environment": {"image": "x"},
                     "resources": {"cpu": 1, "memory": "1Gi", "gpu": 9}})
    assert error.message.startswith("Validation error: job.name: a lowercase RFC 1123 label")
    assert error.message.endswith("(and 1 more)")
    assert error.to_body()["details"]["resources.gpu"] == ["GPU count cannot exceed 8"]


def test_an_answer_names_at_most_20_paths_but_counts_them_all():
    text = "kind: pool\npool: {name: p}\nnodes:\n" + "".join(
        f"  BAD_{i}: {{}}\n" for i in range(300))
    error = failure(text)
    assert len(error.details) == 20 and error.message.endswith("(and 299 more)")


def test_a_forbidden_character_is_located_by_line_and_column():
    assert details("kind: training\njob: {name: \x00}\n") == {"yamlContent": [
        "line 2, column 13: unacceptable character #x0000: control characters are not allowed"]}
