"""URL routes of the portal."""
from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView

urlpatterns = [
    path("", RedirectView.as_view(pattern_name="models_registry:model_list", permanent=False)),
    path("accounts/", include("accounts.urls")),
    path("", include("models_registry.urls")),
    path("", include("deployments.urls")),
    path("", include("workspaces.urls")),
    path("", include("audit.urls")),
    path("", include("notifications.urls")),
    path("api/v1/", include("api.urls")),
    path("", include("api.page_urls")),
    path("", include("webhooks.urls")),
    path("admin/", admin.site.urls),
]
