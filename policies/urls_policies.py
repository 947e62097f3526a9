"""Policies, their versions, the rule editor and YAML files. "new" comes before the slug routes, so
no policy may be called "new"."""

from django.urls import URLPattern, path

from policies.views import policies as views

VERSION = "policies/<slug:slug>/versions/<int:number>/"

urlpatterns: list[URLPattern] = [
    path("policies/", views.PolicyList.as_view(), name="policy-list"),
    path("policies/new/", views.PolicyCreate.as_view(), name="policy-create"),
    path("policies/<slug:slug>/", views.PolicyDetail.as_view(), name="policy-detail"),
    path("policies/<slug:slug>/new-draft/", views.NewDraft.as_view(), name="policy-new-draft"),
    path("policies/<slug:slug>/upload/", views.Upload.as_view(), name="policy-upload"),
    path(VERSION, views.VersionDetail.as_view(), name="version-detail"),
    path(f"{VERSION}yaml/", views.VersionDownload.as_view(), name="version-download"),
    path(f"{VERSION}edit/", views.VersionEditor.as_view(), name="version-edit"),
    path(f"{VERSION}edit/yaml/", views.VersionYamlEditor.as_view(), name="version-edit-yaml"),
    path(f"{VERSION}submit/", views.Submit.as_view(), name="version-submit"),
    path(f"{VERSION}rollback/", views.Rollback.as_view(), name="version-rollback"),
]
