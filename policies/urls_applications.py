"""Teams, applications and their API keys. "new" comes before the slug routes, so forms refuse that slug."""

from django.urls import URLPattern, path

from policies.views import applications as views

urlpatterns: list[URLPattern] = [
    path("teams/", views.TeamList.as_view(), name="team-list"),
    path("teams/new/", views.TeamCreate.as_view(), name="team-create"),
    path("teams/<slug:slug>/", views.TeamDetail.as_view(), name="team-detail"),
    path("teams/<slug:slug>/edit/", views.TeamUpdate.as_view(), name="team-update"),
    path("applications/", views.application_list, name="application-list"),
    path("applications/new/", views.ApplicationCreate.as_view(), name="application-create"),
    path("applications/<slug:slug>/", views.ApplicationDetail.as_view(), name="application-detail"),
    path("applications/<slug:slug>/edit/", views.ApplicationUpdate.as_view(), name="application-update"),
    path("applications/<slug:slug>/keys/new/", views.ApiKeyCreate.as_view(), name="apikey-create"),
    path("applications/<slug:slug>/keys/<int:pk>/revoke/", views.ApiKeyRevoke.as_view(), name="apikey-revoke"),
]
