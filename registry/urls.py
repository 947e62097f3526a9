from django.urls import path

from registry import views

app_name = "registry"

urlpatterns = [
    path("", views.version_list, name="version-list"),
    path("versions/new/", views.VersionCreate.as_view(), name="version-create"),
    path("versions/<int:pk>/", views.VersionDetail.as_view(), name="version-detail"),
    path("versions/<int:pk>/edit/", views.VersionUpdate.as_view(), name="version-update"),
    path("versions/<int:pk>/transition/", views.VersionTransition.as_view(), name="version-transition"),
    path("providers/", views.ProviderList.as_view(), name="provider-list"),
    path("providers/new/", views.ProviderCreate.as_view(), name="provider-create"),
    path("providers/<int:pk>/", views.ProviderDetail.as_view(), name="provider-detail"),
    path("providers/<int:pk>/edit/", views.ProviderUpdate.as_view(), name="provider-update"),
    path("models/new/", views.ModelCreate.as_view(), name="model-create"),
    path("models/<int:pk>/", views.ModelDetail.as_view(), name="model-detail"),
    path("models/<int:pk>/edit/", views.ModelUpdate.as_view(), name="model-update"),
    path("compliance/", views.compliance_matrix, name="compliance"),
    path(
        "compliance/<int:pk>/<slug:slug>/",
        views.ComplianceCellEdit.as_view(),
        name="compliance-cell",
    ),
]
