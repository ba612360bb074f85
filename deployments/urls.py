from django.urls import path

from .configs import views as config_views
from .promotions import views as promotion_views
from .serving import views
from .verification import views as verification_views

app_name = "deployments"
urlpatterns = [
    path("endpoints/", views.endpoint_list, name="endpoint_list"),
    path("endpoints/<str:name>/", views.endpoint_detail, name="endpoint_detail"),
    path("endpoints/<str:name>/releases/", views.endpoint_releases, name="endpoint_releases"),
    path("endpoints/<str:name>/drift/", views.endpoint_drift, name="endpoint_drift"),
    path("endpoints/<str:name>/rollout/", promotion_views.endpoint_config_rollout, name="endpoint_config_rollout"),
    path("releases/", views.releases_as_of, name="releases_as_of"),
    path("endpoints/<str:name>/key/", views.endpoint_key, name="endpoint_key"),
    path("endpoints/<str:name>/try/", views.endpoint_try, name="endpoint_try"),
    path("endpoints/<str:name>/traffic/", views.endpoint_traffic, name="endpoint_traffic"),
    path("endpoints/<str:name>/deployments/<int:pk>/logs/", views.deployment_logs, name="deployment_logs"),
    path("endpoints/<str:name>/deployments/<int:pk>/delete/", views.deployment_delete, name="deployment_delete"),
    path("endpoints/<str:name>/rollback/", views.endpoint_rollback, name="endpoint_rollback"),
    path("models/<str:name>/versions/<int:version>/deploy/", views.version_deploy, name="version_deploy"),
    path("models/<str:name>/versions/<int:version>/promote/", promotion_views.version_promote, name="version_promote"),
    path("profiles/import/", views.profile_import, name="profile_import"),
    path("promotions/", promotion_views.promotion_list, name="promotion_list"),
    path("promotions/waiting/", promotion_views.promotion_inbox, name="promotion_inbox"),
    path("promotions/<int:pk>/", promotion_views.promotion_detail, name="promotion_detail"),
    path("promotions/<int:pk>/report/", promotion_views.promotion_report, name="promotion_report"),
    path("promotions/<int:pk>/decide/", promotion_views.promotion_decide, name="promotion_decide"),
    path("promotions/<int:pk>/cancel/", promotion_views.promotion_cancel, name="promotion_cancel"),
    path("capacity/", verification_views.capacity_list, name="capacity_list"),
    path("capacity/new/", verification_views.capacity_new, name="capacity_new"),
    path("capacity/<int:pk>/", verification_views.capacity_detail, name="capacity_detail"),
    path("capacity/<int:pk>/stop/", verification_views.capacity_stop, name="capacity_stop"),
    path("capacity/<int:pk>/propose/", config_views.capacity_propose, name="capacity_propose"),
    path("capacity/proposals/<int:pk>/apply/", config_views.capacity_apply, name="capacity_apply"),
    path("configs/", config_views.config_index, name="config_index"),
    path("configs/<str:slug>/new/", config_views.config_edit, name="config_create"),
    path("configs/<str:slug>/<int:pk>/", config_views.config_detail, name="config_detail"),
    path("configs/<str:slug>/<int:pk>/edit/", config_views.config_edit, name="config_edit"),
    path("configs/<str:slug>/<int:pk>/yaml/", config_views.config_yaml, name="config_yaml"),
    path("configs/<str:slug>/<int:pk>/import/", config_views.config_import, name="config_import"),
    path("configs/<str:slug>/<int:pk>/diff/", config_views.config_diff, name="config_diff"),
    path("configs/<str:slug>/<int:pk>/revisions/<int:number>/revert/", config_views.config_revert,
         name="config_revert"),
]
