from typing import Any

import pytest
from django.test import Client


@pytest.mark.django_db
def test_health_needs_no_login_and_checks_the_database() -> None:
    response = Client().get("/health/")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


@pytest.mark.django_db
@pytest.mark.parametrize("url", ["/api/schema/", "/api/docs/", "/api/v1/"])
def test_api_docs_and_schema_need_a_signed_in_user(url: str) -> None:
    assert Client().get(url).status_code == 401


@pytest.mark.django_db
def test_the_schema_describes_the_routing_api(administrator: Any) -> None:
    client = Client()
    client.force_login(administrator)
    schema = client.get("/api/schema/?format=json").json()
    route = schema["paths"]["/api/v1/route"]["post"]
    assert set(route["responses"]) == {"200", "400", "401", "403", "422", "429", "503"}
    assert schema["components"]["schemas"]["RouteRequest"]["required"] == ["task_type", "data_classification"]
    assert "/api/v1/decisions/{decision_id}/outcome" in schema["paths"]
