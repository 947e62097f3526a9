import pytest
from django.test import Client


@pytest.mark.django_db
def test_health_needs_no_login_and_checks_the_database() -> None:
    response = Client().get("/health/")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
