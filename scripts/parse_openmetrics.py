"""Parses a /metrics body (OpenMetrics text) with the official Prometheus client's parser and
prints every sample as JSON: [{"family", "type", "unit", "name", "labels", "value"}]. The parser
refuses text that breaks the format, so the tests read sliq's endpoint the way Prometheus does."""
import json
import sys

from prometheus_client.openmetrics.parser import text_string_to_metric_families

with open(sys.argv[1], encoding="utf-8") as f:
    text = f.read()
samples = []
for family in text_string_to_metric_families(text):
    for s in family.samples:
        samples.append(
            {
                "family": family.name,
                "type": family.type,
                "unit": family.unit,
                "name": s.name,
                "labels": s.labels,
                "value": s.value,
            }
        )
print(json.dumps(samples))
