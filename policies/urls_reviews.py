"""The reviewer's pages, and plotly's script that the impact chart needs (served from the
installed package, never a CDN)."""

from django.urls import URLPattern, path

from policies.views import reviews as views

urlpatterns: list[URLPattern] = [
    path("reviews/", views.review_queue, name="review-queue"),
    path("reviews/policies/<slug:slug>/<int:number>/", views.VersionReview.as_view(), name="version-review"),
    path("reviews/compliance/<int:pk>/", views.ComplianceRequestReview.as_view(), name="compliance-request"),
    path("static-vendor/plotly.min.js", views.plotly_js, name="plotly-js"),
]
