"""/api/v1/: every route answers JSON. Login is checked by the API's own authentication (a bearer token, or the
portal session), so an anonymous call gets a 401 problem, not the sign-in page."""
from django.contrib.auth.decorators import login_not_required, login_required
from django.urls import path, re_path
from django.views.decorators.csrf import csrf_exempt
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from . import views

app_name = "api"


def _api(view_class, **kwargs):
    return login_not_required(view_class.as_view(**kwargs))


urlpatterns = [
    path("me/", _api(views.MeView), name="me"),
    path("models/", _api(views.ModelList), name="model-list"),
    path("models/<str:name>/", _api(views.ModelDetail), name="model-detail"),
    path("models/<str:name>/versions/", _api(views.VersionList), name="version-list"),
    path("models/<str:name>/versions/<int:version>/", _api(views.VersionDetail), name="version-detail"),
    path("models/<str:name>/versions/<int:version>/files/<path:path>", _api(views.VersionFile),
         name="version-file"),
    path("runs/", _api(views.RunList), name="run-list"),
    path("runs/<int:pk>/", _api(views.RunDetail), name="run-detail"),
    path("runs/<int:pk>/cancel/", _api(views.RunCancel), name="run-cancel"),
    path("runs/<int:pk>/register/", _api(views.RunRegister), name="run-register"),
    path("endpoints/", _api(views.EndpointList), name="endpoint-list"),
    path("endpoints/<str:name>/", _api(views.EndpointDetail), name="endpoint-detail"),
    path("endpoints/<str:name>/key/", _api(views.EndpointKey), name="endpoint-key"),
    path("endpoints/<str:name>/traffic/", _api(views.EndpointTraffic), name="endpoint-traffic"),
    path("endpoints/<str:name>/rollback/", _api(views.EndpointRollback), name="endpoint-rollback"),
    path("releases/", _api(views.ReleasesAsOf), name="releases"),
    path("promotions/", _api(views.PromotionList), name="promotion-list"),
    path("promotions/<int:pk>/", _api(views.PromotionDetail), name="promotion-detail"),
    path("promotions/<int:pk>/decision/", _api(views.PromotionDecision), name="promotion-decision"),
    path("promotions/<int:pk>/cancel/", _api(views.PromotionCancel), name="promotion-cancel"),
    path("configs/<slug:slug>/", _api(views.ConfigKindView), name="config-list"),
    path("configs/<slug:slug>/<int:pk>/", _api(views.ConfigDetailView), name="config-detail"),
    path("audit/", _api(views.AuditList), name="audit"),
    path("schema/", _api(SpectacularAPIView), name="schema"),
    # The docs page is a portal page (sign-in required); its "try it out" calls use the session or a token.
    path("docs/", login_required(SpectacularSwaggerView.as_view(url_name="api:schema")), name="docs"),
    re_path(r"^[\s\S]*$", login_not_required(csrf_exempt(views.not_found))),
]
