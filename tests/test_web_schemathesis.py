"""The JSON API, checked by schemathesis against its own OpenAPI description: generated
requests, valid and invalid, with a token and without, never make the server fail (no 5xx, no
exception), on SQLite and on PostgreSQL.

The generated cases are drawn in a plain test (schemathesis' lazy pytest fixture does not run on
this pytest), derandomised so that a run is repeatable.
"""

from __future__ import annotations

from collections import Counter

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error

from factories import STAFF, step_of
from test_web_workspace import agency, api_token, app_on

RUN = settings(
    max_examples=60,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
)


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_no_generated_request_makes_the_api_fail(db, mode) -> None:
    agency(db, steps=step_of("evaluate"))
    schema = schemathesis.openapi.from_asgi("/openapi.json", app_on(db))
    token = api_token(db, STAFF)
    seen: Counter[int] = Counter()

    @given(case=schema.as_strategy(mode), authorised=st.sampled_from([True, True, True, False]))
    @RUN
    def call(case, authorised: bool) -> None:
        response = case.call_and_validate(
            headers=token if authorised else {}, checks=[not_a_server_error]
        )
        seen[response.status_code] += 1

    call()
    assert all(status < 500 for status in seen), seen
    assert 401 in seen  # the requests without a token were refused ...
    if mode == GenerationMode.POSITIVE:  # ... and those with one reached the cases
        assert any(200 <= status < 300 for status in seen), seen
