#!/usr/bin/env python3
"""Validates documents against a JSON Schema with the reference Python validator (the draft its
`$schema` names): the tests' independent check of the pipeline schema, the request-log schema and
the dashboard `sliq dashboard` writes (`sliq_tests::python::json_schema_errors`).

Usage: check_json_schema.py SCHEMA DOCUMENTS

SCHEMA is a JSON Schema file (checked against its draft's metaschema first); DOCUMENTS is a JSON
file holding a list of documents. Prints a JSON list with, for each document in order, the errors
found in it ("<path>: <message>"), empty when the document is valid.
"""
import json
import sys

import jsonschema


def main() -> None:
    schema_path, documents_path = sys.argv[1:3]
    with open(schema_path, encoding="utf-8") as f:
        schema = json.load(f)
    with open(documents_path, encoding="utf-8") as f:
        documents = json.load(f)
    kind = jsonschema.validators.validator_for(schema)
    kind.check_schema(schema)
    validator = kind(schema)
    verdicts = [
        [
            f"{'/'.join(map(str, e.absolute_path)) or '(top)'}: {e.message}"
            for e in validator.iter_errors(document)
        ]
        for document in documents
    ]
    print(json.dumps(verdicts))


if __name__ == "__main__":
    main()
