from django.http import HttpRequest, HttpResponse
from django.urls import URLPattern, path


def placeholder(request: HttpRequest) -> HttpResponse:  # replaced by the real page
    return HttpResponse("")


urlpatterns: list[URLPattern] = [path("applications/", placeholder, name="application-list")]
