"""The admin stays within the rules: vocabulary edits are audited, governed objects are read-only."""

from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client

from audit.models import AuditEvent
from registry.models import Region
from registry.tests.factories import make_version

pytestmark = pytest.mark.django_db


@pytest.fixture
def superuser_client(db: Any) -> Client:
    client = Client()
    client.force_login(User.objects.create_superuser("root", "root@example.test", "pw"))
    return client


def test_vocabulary_edits_in_the_admin_are_audited(superuser_client: Client) -> None:
    response = superuser_client.post("/admin/registry/region/add/", {"slug": "apac", "name": "Asia Pacific"})
    assert response.status_code == 302
    region = Region.objects.get(slug="apac")
    superuser_client.post(f"/admin/registry/region/{region.pk}/change/", {"slug": "apac", "name": "APAC"})
    superuser_client.post(f"/admin/registry/region/{region.pk}/delete/", {"post": "yes"})
    kinds = list(AuditEvent.objects.filter(object_type="registry.region").order_by("id").values_list("kind", flat=True))
    assert kinds == ["region.created", "region.updated", "region.deleted"]
    assert set(AuditEvent.objects.values_list("actor_name", flat=True)) == {"root"}


def test_versions_cells_and_events_are_read_only_in_the_admin(superuser_client: Client, vocabulary: Any) -> None:
    version = make_version(lifecycle="approved")
    assert superuser_client.get("/admin/registry/modelversion/add/").status_code == 403
    page = superuser_client.get(f"/admin/registry/modelversion/{version.pk}/change/")
    assert page.status_code == 200 and b'name="_save"' not in page.content
    assert superuser_client.get("/admin/registry/compliancecell/add/").status_code == 403
    event = AuditEvent.objects.first()
    assert superuser_client.post(f"/admin/audit/auditevent/{event.pk}/delete/", {"post": "yes"}).status_code == 403
    assert AuditEvent.objects.filter(pk=event.pk).exists()
