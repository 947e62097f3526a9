from django.urls import path

from policies.api import routing

urlpatterns = [
    path("route", routing.route, name="route"),
    path("decisions/<uuid:decision_id>/outcome", routing.outcome, name="decision-outcome"),
]
