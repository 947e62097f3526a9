"""Teams, applications and API key pages: who may do what, what is audited, and a key shown only once."""

import datetime
import json
import re
from decimal import Decimal
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from audit.models import AuditEvent
from policies import services
from policies.models import ApiKey, Application, Policy, Team
from policies.tests.factories import make_app, make_team
from registry.models import Counter, DataClassification
from registry.services import current

pytestmark = pytest.mark.django_db

RAW_KEY = re.compile(r"sb_[0-9a-f]{8}_[A-Za-z0-9_-]{20,}")


@pytest.fixture
def app(vocabulary: dict[str, Any]) -> Application:
    return make_app(make_team(name="Support", slug="support"), name="Support assistant", slug="support-assistant")


@pytest.fixture
def key(app: Application) -> ApiKey:
    return services.generate_key(app, name="production")[0]


def secret_part(raw: str) -> str:
    """The random part after ``sb_<prefix>_``; the prefix alone is public."""
    return raw.split("_", 2)[2]


def client_for(user: User | None) -> Client:
    client = Client()
    if user is not None:
        client.force_login(user)
    return client


def read_pages(app: Application) -> list[str]:
    return [
        reverse("policies:team-list"),
        reverse("policies:team-detail", args=[app.team.slug]),
        reverse("policies:application-list"),
        reverse("policies:application-detail", args=[app.slug]),
    ]


def write_pages(app: Application, key: ApiKey) -> list[str]:
    return [
        reverse("policies:team-create"),
        reverse("policies:team-update", args=[app.team.slug]),
        reverse("policies:application-create"),
        reverse("policies:application-update", args=[app.slug]),
        reverse("policies:apikey-create", args=[app.slug]),
        reverse("policies:apikey-revoke", args=[app.slug, key.pk]),
    ]


def application_form(team: Team, /, **overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "name": "Claims triage",
        "slug": "claims-triage",
        "team": team.pk,
        "description": "Sorts incoming claims.",
        "allowed_classifications": [DataClassification.objects.get(slug="internal").pk],
        "policy": "",
    }
    data.update(overrides)
    return data


def new_key(client: Client, app: Application, **data: Any) -> Any:
    return client.post(reverse("policies:apikey-create", args=[app.slug]), {"name": "staging", **data})


# --- Permissions ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("role", "read", "write"),
    [("administrator", 200, 200), ("reviewer", 200, 403), ("auditor", 200, 403), ("none", 403, 403)],
)
def test_role_matrix_for_team_application_and_key_pages(
    personas: dict[str, User], app: Application, key: ApiKey, role: str, read: int, write: int
) -> None:
    client = client_for(personas[role])
    for url in read_pages(app):
        assert client.get(url).status_code == read, url
    for url in write_pages(app, key):
        assert client.get(url).status_code == write, url
        assert client.post(url, {}).status_code in ({write} if write == 403 else {200, 400, 302}), url


def test_read_only_roles_change_nothing_by_post(personas: dict[str, User], app: Application, key: ApiKey) -> None:
    events = AuditEvent.objects.count()
    team = app.team
    for role in ("reviewer", "auditor", "none"):
        client = client_for(personas[role])
        assert (
            client.post(
                reverse("policies:team-create"), {"name": "X", "slug": "x", "monthly_budget_usd": "1"}
            ).status_code
            == 403
        )
        assert (
            client.post(
                reverse("policies:team-update", args=[team.slug]),
                {"name": "Renamed", "slug": team.slug, "monthly_budget_usd": "5"},
            ).status_code
            == 403
        )
        assert client.post(reverse("policies:application-create"), application_form(team)).status_code == 403
        assert new_key(client, app).status_code == 403
        assert client.post(reverse("policies:apikey-revoke", args=[app.slug, key.pk])).status_code == 403
    assert AuditEvent.objects.count() == events
    assert Team.objects.count() == 1
    assert Application.objects.count() == 1
    assert ApiKey.objects.count() == 1
    key.refresh_from_db()
    assert key.revoked_at is None


def test_anonymous_visitor_is_sent_to_login(app: Application, key: ApiKey) -> None:
    for url in [*read_pages(app), *write_pages(app, key)]:
        for response in (Client().get(url), Client().post(url, {})):
            assert response.status_code == 302, url
            assert response["Location"].startswith(reverse("login")), url


def test_read_only_roles_see_no_create_edit_or_revoke_controls(
    personas: dict[str, User], app: Application, key: ApiKey
) -> None:
    for role in ("reviewer", "auditor"):
        client = client_for(personas[role])
        for url in read_pages(app):
            html = client.get(url).content.decode()
            assert "/new/" not in html, (role, url)
            assert "/edit/" not in html, (role, url)
            assert "/revoke/" not in html, (role, url)
            assert "New key" not in html, (role, url)
        detail = client.get(reverse("policies:application-detail", args=[app.slug])).content.decode()
        assert key.prefix in detail, role


def test_administrator_sees_the_controls(administrator: User, app: Application, key: ApiKey) -> None:
    html = client_for(administrator).get(reverse("policies:application-detail", args=[app.slug])).content.decode()
    assert reverse("policies:application-update", args=[app.slug]) in html
    assert reverse("policies:apikey-create", args=[app.slug]) in html
    assert reverse("policies:apikey-revoke", args=[app.slug, key.pk]) in html


def test_unknown_team_or_application_is_404_for_readers(reviewer: User, vocabulary: dict[str, Any]) -> None:
    client = client_for(reviewer)
    assert client.get(reverse("policies:team-detail", args=["nope"])).status_code == 404
    assert client.get(reverse("policies:application-detail", args=["nope"])).status_code == 404


# --- Teams ------------------------------------------------------------------------------------


def test_team_list_shows_application_count_and_budget(auditor: User, vocabulary: dict[str, Any]) -> None:
    team = make_team(name="Claims", slug="claims", monthly_budget_usd=Decimal("12500.50"))
    make_app(team)
    make_app(team)
    make_team(name="Empty", slug="empty")
    response = client_for(auditor).get(reverse("policies:team-list"))
    rows = {team.name: team for team in response.context["page_obj"]}
    assert rows["Claims"].application_count == 2
    assert rows["Empty"].application_count == 0
    assert "$12,500.50" in response.content.decode()


def test_team_detail_shows_applications_and_contacts(auditor: User, app: Application) -> None:
    Team.objects.filter(pk=app.team_id).update(contacts="lead@example.test\nfinance@example.test")
    html = client_for(auditor).get(app.team.get_absolute_url()).content.decode()
    assert app.name in html
    assert 'href="mailto:lead@example.test"' in html
    assert "finance@example.test" in html


def test_administrator_creates_a_team_and_it_is_audited(administrator: User, vocabulary: dict[str, Any]) -> None:
    generation = current(Counter.ROUTING_GENERATION)
    response = client_for(administrator).post(
        reverse("policies:team-create"),
        {"name": "Claims", "slug": "claims", "monthly_budget_usd": "2500.00", "contacts": " lead@example.test \n\n"},
    )
    team = Team.objects.get(slug="claims")
    assert response.status_code == 302
    assert response["Location"] == team.get_absolute_url() == "/teams/claims/"
    assert team.monthly_budget_usd == Decimal("2500.00")
    assert team.contacts == "lead@example.test"
    event = AuditEvent.objects.get(kind="team.created")
    assert event.actor_name == administrator.username
    assert event.before is None
    assert event.after["slug"] == "claims"
    assert event.after["monthly_budget_usd"] == "2500.00"
    assert current(Counter.ROUTING_GENERATION) == generation + 1


def test_administrator_edits_a_team_with_before_and_after(administrator: User, app: Application) -> None:
    team = app.team
    response = client_for(administrator).post(
        reverse("policies:team-update", args=[team.slug]),
        {"name": "Customer support", "slug": team.slug, "monthly_budget_usd": "750", "contacts": ""},
    )
    assert response.status_code == 302
    team.refresh_from_db()
    assert team.name == "Customer support"
    event = AuditEvent.objects.get(kind="team.updated")
    assert event.before["name"] == "Support"
    assert event.after["name"] == "Customer support"
    assert event.before["monthly_budget_usd"] == "1000.00"
    assert event.after["monthly_budget_usd"] == "750.00"
    assert event.actor_name == administrator.username


@pytest.mark.parametrize(
    ("data", "field", "message"),
    [
        ({"monthly_budget_usd": "-1"}, "monthly_budget_usd", "greater than or equal to 0"),
        ({"slug": "support"}, "slug", "already exists"),
        ({"name": "Support"}, "name", "already exists"),
        ({"slug": "new"}, "slug", "reserved"),
        ({"slug": "not a slug"}, "slug", "valid “slug”"),
        ({"contacts": "lead@example.test\nnot-an-address"}, "contacts", "Not an email address: not-an-address"),
    ],
)
def test_team_form_refuses_bad_input_and_writes_nothing(
    administrator: User, app: Application, data: dict[str, Any], field: str, message: str
) -> None:
    events = AuditEvent.objects.count()
    form = {"name": "Claims", "slug": "claims", "monthly_budget_usd": "10", "contacts": "", **data}
    response = client_for(administrator).post(reverse("policies:team-create"), form)
    assert response.status_code == 200
    errors = " ".join(response.context["form"].errors[field])
    assert message in errors
    assert message in response.content.decode().replace("&quot;", '"').replace("&#x27;", "'")
    assert Team.objects.count() == 1
    assert AuditEvent.objects.count() == events


def test_saving_a_team_unchanged_writes_no_event(administrator: User, app: Application) -> None:
    """The budget typed without cents is the same amount, not a change to audit."""
    team = app.team
    generation = current(Counter.ROUTING_GENERATION)
    response = client_for(administrator).post(
        reverse("policies:team-update", args=[team.slug]),
        {"name": team.name, "slug": team.slug, "monthly_budget_usd": "1000", "contacts": ""},
    )
    assert response.status_code == 302
    assert not AuditEvent.objects.filter(kind="team.updated").exists()
    assert current(Counter.ROUTING_GENERATION) == generation


def test_team_edit_refuses_a_negative_budget_and_keeps_the_old_one(administrator: User, app: Application) -> None:
    team = app.team
    response = client_for(administrator).post(
        reverse("policies:team-update", args=[team.slug]),
        {"name": team.name, "slug": team.slug, "monthly_budget_usd": "-5", "contacts": ""},
    )
    assert response.status_code == 200
    assert "greater than or equal to 0" in response.content.decode()
    team.refresh_from_db()
    assert team.monthly_budget_usd == Decimal("1000.00")
    assert not AuditEvent.objects.filter(kind="team.updated").exists()


# --- Applications -----------------------------------------------------------------------------


def test_application_list_filters_by_team_and_paginates(auditor: User, vocabulary: dict[str, Any]) -> None:
    claims, support = make_team(slug="claims"), make_team(slug="support")
    for _ in range(26):
        make_app(claims)
    only = make_app(support, name="Only support app")
    client = client_for(auditor)
    first = client.get(reverse("policies:application-list"))
    assert first.context["page"].paginator.count == 27
    assert len(first.context["page"].object_list) == 25
    assert 'rel="next"' in first.content.decode()
    filtered = client.get(reverse("policies:application-list"), {"team": "support"})
    assert list(filtered.context["page"].object_list) == [only]
    second = client.get(reverse("policies:application-list"), {"team": "claims", "page": "2"})
    assert len(second.context["page"].object_list) == 1
    assert "team=claims&amp;page=1" in second.content.decode()


def test_application_list_ignores_an_unknown_team_filter_with_a_message(auditor: User, app: Application) -> None:
    response = client_for(auditor).get(reverse("policies:application-list"), {"team": "ghost"})
    assert response.status_code == 200
    assert list(response.context["page"].object_list) == [app]
    assert "Select a valid choice" in response.content.decode()


def test_application_list_query_count_does_not_grow_with_rows(auditor: User, vocabulary: dict[str, Any]) -> None:
    client = client_for(auditor)
    team = make_team()
    make_app(team)
    with CaptureQueriesContext(connection) as few:
        client.get(reverse("policies:application-list"))
    for _ in range(5):
        services.generate_key(make_app(make_team()), name="k")
    with CaptureQueriesContext(connection) as many:
        client.get(reverse("policies:application-list"))
    assert len(many) == len(few)


def test_application_list_counts_only_usable_keys(auditor: User, app: Application) -> None:
    services.generate_key(app, name="live")
    services.revoke_key(services.generate_key(app, name="old")[0])
    expired, _ = services.generate_key(app, name="expired", expires_at=timezone.now() + datetime.timedelta(days=1))
    ApiKey.objects.filter(pk=expired.pk).update(expires_at=timezone.now() - datetime.timedelta(days=1))
    response = client_for(auditor).get(reverse("policies:application-list"))
    assert response.context["page"].object_list[0].key_count == 1


def test_application_detail_shows_team_policy_classifications_and_capture(auditor: User, app: Application) -> None:
    policy = Policy.objects.create(name="Support routing", slug="support-routing")
    Application.objects.filter(pk=app.pk).update(policy=policy, content_capture=True)
    html = client_for(auditor).get(app.get_absolute_url()).content.decode()
    assert "Support routing" in html
    assert app.team.get_absolute_url() in html
    assert "public, internal" in html
    assert "prompts and outputs are stored in full" in html


def test_application_without_policy_warns_that_requests_are_refused(auditor: User, app: Application) -> None:
    html = client_for(auditor).get(app.get_absolute_url()).content.decode()
    assert "every routing request it makes is refused" in html


def test_administrator_creates_an_application_with_content_capture_off_by_default(
    administrator: User, app: Application
) -> None:
    policy = Policy.objects.create(name="Claims routing", slug="claims-routing")
    client = client_for(administrator)
    page = client.get(reverse("policies:application-create"), {"team": app.team.slug})
    assert page.context["form"].initial["team"] == app.team
    assert 'type="checkbox" name="content_capture"' in page.content.decode()
    assert 'name="allowed_classifications"' in page.content.decode()
    response = client.post(reverse("policies:application-create"), application_form(app.team, policy=policy.pk))
    created = Application.objects.get(slug="claims-triage")
    assert response.status_code == 302
    assert response["Location"] == created.get_absolute_url() == "/applications/claims-triage/"
    assert created.content_capture is False
    assert created.policy == policy
    assert [c.slug for c in created.allowed_classifications.all()] == ["internal"]
    event = AuditEvent.objects.get(kind="application.created")
    assert event.actor_name == administrator.username
    assert event.after["allowed_classifications"] == ["internal"]
    assert event.after["content_capture"] is False
    assert event.after["policy_id"] == policy.pk


def test_administrator_edits_an_application_with_before_and_after(administrator: User, app: Application) -> None:
    confidential = DataClassification.objects.get(slug="confidential")
    response = client_for(administrator).post(
        reverse("policies:application-update", args=[app.slug]),
        application_form(
            app.team,
            name=app.name,
            slug=app.slug,
            allowed_classifications=[confidential.pk],
            content_capture="on",
        ),
    )
    assert response.status_code == 302
    app.refresh_from_db()
    assert app.content_capture is True
    event = AuditEvent.objects.get(kind="application.updated")
    assert event.before["allowed_classifications"] == ["internal", "public"]
    assert event.after["allowed_classifications"] == ["confidential"]
    assert event.before["content_capture"] is False
    assert event.after["content_capture"] is True


@pytest.mark.parametrize(
    ("overrides", "field", "message"),
    [
        ({"slug": "support-assistant"}, "slug", "already exists"),
        ({"slug": "new"}, "slug", "reserved"),
        ({"team": "9999"}, "team", "Select a valid choice"),
        ({"allowed_classifications": ["9999"]}, "allowed_classifications", "Select a valid choice"),
        ({"name": ""}, "name", "This field is required"),
    ],
)
def test_application_form_refuses_bad_input_and_writes_nothing(
    administrator: User, app: Application, overrides: dict[str, Any], field: str, message: str
) -> None:
    events = AuditEvent.objects.count()
    response = client_for(administrator).post(
        reverse("policies:application-create"), application_form(app.team, **overrides)
    )
    assert response.status_code == 200
    assert message in " ".join(response.context["form"].errors[field])
    assert Application.objects.count() == 1
    assert AuditEvent.objects.count() == events


def test_application_service_refusal_is_shown_on_the_form(
    administrator: User, app: Application, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Rules only the service knows reach the person as a form error, not a 500."""
    from django.core.exceptions import ValidationError

    from registry import services as registry_services

    def refuse(*args: Any, **kwargs: Any) -> None:
        raise ValidationError({"slug": "Refused by the service.", "__all__": "Nothing was saved."})

    monkeypatch.setattr(registry_services, "create_object", refuse)
    response = client_for(administrator).post(reverse("policies:application-create"), application_form(app.team))
    assert response.status_code == 200
    html = response.content.decode()
    assert "Refused by the service." in html
    assert "Nothing was saved." in html


# --- API keys ---------------------------------------------------------------------------------


def test_new_key_is_shown_once_and_only_its_hash_is_stored(administrator: User, app: Application) -> None:
    client = client_for(administrator)
    response = new_key(client, app)
    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]
    html = response.content.decode()
    raw = RAW_KEY.search(html).group(0)
    assert "It will not be shown again" in html
    key = ApiKey.objects.get(application=app)
    assert key.key_hash == services.hash_key(raw)
    assert raw.startswith(f"sb_{key.prefix}_")
    stored = [str(getattr(key, field.attname)) for field in ApiKey._meta.concrete_fields]
    assert not any(raw in value or secret_part(raw) in value for value in stored)
    assert raw not in response.get("Location", "")
    assert raw not in str(dict(client.session))
    detail = client.get(app.get_absolute_url()).content.decode()
    assert f"sb_{key.prefix}_" in detail
    assert raw not in detail
    assert secret_part(raw) not in detail


def test_new_key_is_audited_with_the_administrators_name(administrator: User, app: Application) -> None:
    new_key(client_for(administrator), app)
    key = ApiKey.objects.get(application=app)
    event = AuditEvent.objects.get(kind="apikey.created")
    assert event.actor_name == administrator.username
    assert event.object_id == str(key.pk)
    assert event.after["prefix"] == key.prefix
    assert key.created_by_name == administrator.username


def test_raw_key_and_its_hash_never_reach_the_audit_log(administrator: User, app: Application, key: ApiKey) -> None:
    client = client_for(administrator)
    raw = RAW_KEY.search(new_key(client, app).content.decode()).group(0)
    created = ApiKey.objects.get(key_hash=services.hash_key(raw))
    client.post(reverse("policies:apikey-revoke", args=[app.slug, created.pk]))
    secret = secret_part(raw)
    for event in AuditEvent.objects.all():
        text = " ".join(
            [json.dumps(event.before), json.dumps(event.after), json.dumps(event.data), event.reason, event.object_repr]
        )
        assert secret not in text, event.kind
        assert created.key_hash not in text, event.kind
    assert AuditEvent.objects.filter(kind__startswith="apikey.").count() == 3


def test_new_key_with_an_expiry_in_the_future_records_it(administrator: User, app: Application) -> None:
    when = timezone.localtime() + datetime.timedelta(days=30)
    response = new_key(client_for(administrator), app, expires_at=when.strftime("%Y-%m-%dT%H:%M"))
    assert response.status_code == 200
    key = ApiKey.objects.get(application=app)
    assert key.expires_at == when.replace(second=0, microsecond=0)


def test_new_key_with_an_expiry_in_the_past_is_refused(administrator: User, app: Application) -> None:
    past = timezone.localtime() - datetime.timedelta(hours=1)
    response = new_key(client_for(administrator), app, expires_at=past.strftime("%Y-%m-%dT%H:%M"))
    assert response.status_code == 400
    assert "An expiry must be in the future." in response.content.decode()
    assert not RAW_KEY.search(response.content.decode())
    assert not ApiKey.objects.exists()
    assert not AuditEvent.objects.filter(kind="apikey.created").exists()


def test_new_key_needs_a_name(administrator: User, app: Application) -> None:
    response = new_key(client_for(administrator), app, name="   ")
    assert response.status_code == 400
    assert "This field is required" in response.content.decode()
    assert not ApiKey.objects.exists()


def test_revoking_shows_a_confirmation_page_first(administrator: User, app: Application, key: ApiKey) -> None:
    url = reverse("policies:apikey-revoke", args=[app.slug, key.pk])
    response = client_for(administrator).get(url)
    assert response.status_code == 200
    html = response.content.decode()
    assert "Yes, revoke this key" in html
    assert f'action="{url}"' in html
    key.refresh_from_db()
    assert key.revoked_at is None
    assert not AuditEvent.objects.filter(kind="apikey.revoked").exists()


def test_confirmed_revoke_sets_revoked_at_and_is_audited(administrator: User, app: Application, key: ApiKey) -> None:
    client = client_for(administrator)
    response = client.post(reverse("policies:apikey-revoke", args=[app.slug, key.pk]))
    assert response.status_code == 302
    assert response["Location"] == app.get_absolute_url()
    key.refresh_from_db()
    assert key.revoked_at is not None
    event = AuditEvent.objects.get(kind="apikey.revoked")
    assert event.actor_name == administrator.username
    assert event.before["revoked_at"] is None
    assert event.after["revoked_at"] == key.revoked_at.isoformat()
    detail = client.get(app.get_absolute_url()).content.decode()
    assert "key-status-revoked" in detail
    assert reverse("policies:apikey-revoke", args=[app.slug, key.pk]) not in detail


def test_revoking_twice_says_so_instead_of_failing(administrator: User, app: Application, key: ApiKey) -> None:
    client = client_for(administrator)
    url = reverse("policies:apikey-revoke", args=[app.slug, key.pk])
    client.post(url)
    response = client.post(url)
    assert response.status_code == 400
    assert "This key is already revoked." in response.content.decode()
    assert AuditEvent.objects.filter(kind="apikey.revoked").count() == 1
    again = client.get(url).content.decode()
    assert "nothing more to do" in again
    assert "Yes, revoke this key" not in again


def test_key_of_another_application_is_404(administrator: User, app: Application, key: ApiKey) -> None:
    other = make_app(make_team())
    response = client_for(administrator).post(reverse("policies:apikey-revoke", args=[other.slug, key.pk]))
    assert response.status_code == 404
    key.refresh_from_db()
    assert key.revoked_at is None


def test_application_page_shows_expired_and_revoked_keys_as_such(auditor: User, app: Application) -> None:
    live, _ = services.generate_key(app, name="live")
    expired, _ = services.generate_key(app, name="old", expires_at=timezone.now() + datetime.timedelta(days=1))
    ApiKey.objects.filter(pk=expired.pk).update(expires_at=timezone.now() - datetime.timedelta(days=1))
    revoked = services.revoke_key(services.generate_key(app, name="leaked")[0])
    response = client_for(auditor).get(app.get_absolute_url())
    statuses = {key.name: status for key, status in response.context["keys"]}
    assert statuses == {"live": "active", "old": "expired", "leaked": "revoked"}
    html = response.content.decode()
    for key in (live, expired, revoked):
        assert f"sb_{key.prefix}_" in html
    assert "key-status-expired" in html
    assert "key-status-revoked" in html
