from policies import urls_applications, urls_policies, urls_reviews

app_name = "policies"

urlpatterns = [*urls_applications.urlpatterns, *urls_policies.urlpatterns, *urls_reviews.urlpatterns]
