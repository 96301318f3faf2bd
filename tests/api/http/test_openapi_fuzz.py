"""The live server's OpenAPI schema is valid, and property-based fuzzing of every operation finds no server error.

Schemathesis generates requests from /openapi.json (valid and invalid ones) and
sends them, with the admin key, to a uvicorn server on a loopback port that has
its own copy of the sample catalogue. Bounded: a few examples per operation.
"""

from __future__ import annotations

import os
from typing import Any
from urllib.parse import urlsplit

import pytest

schemathesis = pytest.importorskip("schemathesis")
from hypothesis import HealthCheck, Phase, settings  # noqa: E402
from schemathesis.specs.openapi.checks import (  # noqa: E402
    negative_data_rejection,
    positive_data_acceptance,
    response_schema_conformance,
)

MAX_EXAMPLES = int(os.environ.get("ARTEFACT_FUZZ_EXAMPLES", "8"))


@pytest.fixture(scope="module")
def fuzz_server(session_home_factory, start_live_server) -> Any:
    # Small limits keep generated uploads cheap; the server is its own (the fuzzer deletes objects).
    return start_live_server(session_home_factory("fuzz"), max_photos=3, max_request_bytes=2_000_000, max_k=20)


@pytest.fixture(scope="module")
def api_schema(fuzz_server: Any, monkeypatch_module: pytest.MonkeyPatch) -> Any:
    for var in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch_module.delenv(var, raising=False)  # requests honours these; nothing may leave loopback
    monkeypatch_module.setenv("NO_PROXY", "*")
    schema = schemathesis.openapi.from_url(f"{fuzz_server.url}/openapi.json", timeout=30)
    return schema


@pytest.fixture(scope="module")
def monkeypatch_module() -> Any:
    mp = pytest.MonkeyPatch()
    yield mp
    mp.undo()


def test_openapi_schema_is_valid(api_schema: Any, fuzz_server: Any) -> None:
    from jsonschema import Draft202012Validator

    raw = api_schema.raw_schema
    assert raw["openapi"].startswith("3.")
    for name, component in raw["components"]["schemas"].items():
        Draft202012Validator.check_schema(component)  # every component is a valid JSON Schema
    operations = [op for op in api_schema.get_all_operations()]
    assert all(op.ok() for op in operations), [op.err() for op in operations if not op.ok()]
    paths = {op.ok().path for op in operations}
    assert {"/v1/search/photo", "/v1/objects/{object_id}", "/v1/audit/searches"} <= paths
    # Protected operations say so in the schema (clients generate auth from it).
    photo = raw["paths"]["/v1/search/photo"]["post"]
    assert photo.get("security"), photo


def test_fuzz_finds_no_server_error(api_schema: Any, fuzz_server: Any) -> None:
    """Every operation, MAX_EXAMPLES generated cases each (positive and negative data)."""
    from hypothesis import given

    assert urlsplit(fuzz_server.url).hostname == "127.0.0.1"
    headers = {"Authorization": f"Bearer {fuzz_server.keys['admin']}"}
    failures: list[str] = []
    calls = 0
    for result in api_schema.get_all_operations():
        operation = result.ok()

        @given(case=operation.as_strategy())
        @settings(max_examples=MAX_EXAMPLES, deadline=None, derandomize=True, database=None,
                  phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
        def fuzz(case: Any) -> None:
            nonlocal calls
            calls += 1
            # Server errors and responses that break their own schema fail. The two data-acceptance
            # checks are left out: FastAPI accepts some schema-invalid values on purpose ("1" for an
            # int form field), and schema-valid random bytes as `photos` are rightly refused (415/422).
            case.call_and_validate(base_url=fuzz_server.url, headers=headers, timeout=60,
                                   excluded_checks=[negative_data_rejection, positive_data_acceptance],
                                   additional_checks=[response_schema_conformance])

        try:
            fuzz()
        except Exception as exc:  # collect every operation's failure, then report them together
            failures.append(f"{operation.label}: {exc}")
    assert calls >= 10 * 2, calls
    assert not failures, "\n\n".join(failures)
    assert fuzz_server.client(None).get("/readyz").status_code == 200
