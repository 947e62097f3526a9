from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView

from audit import export_views
from console import views

urlpatterns = [
    # First: the routing API is on every governed request's path, so it is resolved before the rest.
    path("api/v1/", include("policies.api.urls")),
    path("", views.home, name="home"),
    path("dashboard/<slug:table>.csv", views.dashboard_csv, name="dashboard-csv"),
    path("health/", views.health, name="health"),
    path("accounts/", include("django.contrib.auth.urls")),
    path("admin/", admin.site.urls),
    path("registry/", include("registry.urls")),
    path("", include("policies.urls")),
    path("audit/export/", export_views.export_download, name="audit-export"),
    path("audit/export/manifest/", export_views.export_manifest, name="audit-export-manifest"),
    path("audit/exports/", export_views.export_jobs, name="audit-export-jobs"),
    path("audit/exports/<int:pk>/<str:part>/", export_views.export_job_file, name="audit-export-job-file"),
    path("audit/", include("audit.urls")),
    path("api/v1/audit/", include("audit.api.urls")),
    path("api/v1/", include("registry.api.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    path("api/redoc/", SpectacularRedocView.as_view(url_name="api-schema"), name="api-redoc"),
]
