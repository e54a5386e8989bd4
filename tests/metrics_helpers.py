"""Reading ``/metrics`` in tests, with the client library's own parser."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families


class Samples(dict):
    """``(sample name, frozenset of label items) -> value``."""

    def get_value(self, name: str, **labels: str) -> float:
        """The sample's value; 0 when it is absent (a counter not yet incremented)."""
        return self.get((name, frozenset(labels.items())), 0.0)

    def total(self, name: str, **labels: str) -> float:
        """Sum over every sample of ``name`` whose labels include ``labels``."""
        want = set(labels.items())
        return sum(v for (n, items), v in self.items() if n == name and want <= items)

    def label_values(self, name: str, label: str) -> set[str]:
        return {dict(items)[label] for (n, items) in self if n == name and label in dict(items)}


async def scrape(client, **headers: str) -> Samples:
    response = await client.get("/metrics", headers=headers)
    assert response.status == 200, await response.text()
    samples = Samples()
    for family in text_string_to_metric_families(await response.text()):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples
