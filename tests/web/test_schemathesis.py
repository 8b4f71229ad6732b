"""schemathesis against the published OpenAPI document: no server errors, no schema violations, for every
operation, as an admin (who may call them all). Small ``max_examples`` keeps it to seconds.

``positive_data_acceptance`` is left out: the query language (``q``) and periods (``since``) have grammars JSON
Schema cannot state, so a schema-valid string may be a documented 400 with the reason.
"""

from __future__ import annotations

from typing import Any

import schemathesis
from casework import seed
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import positive_data_acceptance

from openear.web import tokens

MAX_EXAMPLES = 10


def test_api_conforms_to_its_schema(web: Any) -> None:
    seed(web)  # cases, alerts and reports to list, read and change
    with web.store.begin() as conn:
        token = tokens.create_token(conn, "admin", "schemathesis")[1]
    headers = {"Authorization": f"Bearer {token}"}
    schema = schemathesis.openapi.from_asgi("/openapi.json", web.app, headers=headers)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 24
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(max_examples=MAX_EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
        def check(case: Any) -> None:
            case.call_and_validate(headers=headers, excluded_checks=[positive_data_acceptance])

        check()
