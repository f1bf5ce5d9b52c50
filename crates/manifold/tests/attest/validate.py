"""Validate in-toto statements (files given as arguments) against the JSON schemas
next to this file, written from the in-toto Statement v0.1/v1 and SLSA provenance
v0.2/v1 specifications; v1 statements also through PyPI's in-toto-attestation
(its Statement validation, and its SLSA v1 Provenance message). Prints one line per
file; exits 1 on the first failure, naming the file and what is wrong."""

import json
import pathlib
import sys

import jsonschema
from google.protobuf import json_format
from in_toto_attestation.v1.statement import Statement
from in_toto_attestation.v1 import statement_pb2
from in_toto_attestation.predicates.provenance.v1 import provenance_pb2

HERE = pathlib.Path(__file__).parent
STATEMENTS = {
    "https://in-toto.io/Statement/v0.1": "statement-v0.1.schema.json",
    "https://in-toto.io/Statement/v1": "statement-v1.schema.json",
}
PREDICATES = {
    "https://slsa.dev/provenance/v0.2": "slsa-provenance-v0.2.schema.json",
    "https://slsa.dev/provenance/v1": "slsa-provenance-v1.schema.json",
}


def schema(name):
    return json.loads((HERE / name).read_text())


def check(path):
    doc = json.loads(pathlib.Path(path).read_text())
    kind = doc.get("_type")
    if kind not in STATEMENTS:
        raise ValueError(f"unknown statement type {kind!r}")
    jsonschema.validate(doc, schema(STATEMENTS[kind]), format_checker=jsonschema.FormatChecker())
    ptype = doc["predicateType"]
    if ptype not in PREDICATES:
        raise ValueError(f"unknown predicate type {ptype!r}")
    jsonschema.validate(doc["predicate"], schema(PREDICATES[ptype]))
    if kind == "https://in-toto.io/Statement/v1":
        pb = json_format.ParseDict(doc, statement_pb2.Statement())
        Statement.copy_from_pb(pb).validate()
        if ptype == "https://slsa.dev/provenance/v1":
            prov = json_format.ParseDict(
                doc["predicate"], provenance_pb2.Provenance(), ignore_unknown_fields=True
            )
            if not prov.build_definition.build_type:
                raise ValueError("the provenance has no buildDefinition.buildType")
    return f"{path}: {kind} {ptype} valid"


def main():
    for path in sys.argv[1:]:
        try:
            print(check(path))
        except Exception as e:  # noqa: BLE001 - report any failure with its file
            print(f"{path}: INVALID: {e}")
            sys.exit(1)


if __name__ == "__main__":
    main()
