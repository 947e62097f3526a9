from django.urls import path

from audit.api import views

urlpatterns = [
    path("events", views.AuditEventViewSet.as_view({"get": "list"}), name="audit-api-events"),
]
