from registry.api import views

router = views.Router()
router.register("providers", views.ProviderViewSet)
router.register("models", views.ProviderModelViewSet)
router.register("model-versions", views.ModelVersionViewSet)
router.register("classifications", views.DataClassificationViewSet)
router.register("regions", views.RegionViewSet)
router.register("certifications", views.CertificationViewSet)
router.register("capabilities", views.CapabilityViewSet)
router.register("compliance", views.ComplianceViewSet)

urlpatterns = router.urls
