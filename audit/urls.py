from django.urls import path

from audit import views

app_name = "audit"

urlpatterns = [
    path("", views.event_list, name="event-list"),
    path("events/<int:pk>/", views.EventDetail.as_view(), name="event-detail"),
]
