from django.urls import path

from . import views

app_name = "models_registry"
urlpatterns = [
    path("models/", views.model_list, name="model_list"),
    path("models/<str:name>/", views.model_detail, name="model_detail"),
    path("models/<str:name>/compare/", views.version_compare, name="version_compare"),
    path("models/<str:name>/timeline/", views.model_timeline, name="model_timeline"),
    path("models/<str:name>/edit/", views.model_edit, name="model_edit"),
    path("models/<str:name>/versions/<int:version>/", views.version_detail, name="version_detail"),
    path("models/<str:name>/versions/<int:version>/files/<path:path>", views.version_download,
         name="version_download"),
    path("runs/", views.run_list, name="run_list"),
    path("runs/new/", views.run_launch, name="run_launch"),
    path("runs/<int:pk>/", views.run_detail, name="run_detail"),
    path("runs/<int:pk>/cancel/", views.run_cancel, name="run_cancel"),
    path("runs/<int:pk>/register/", views.run_register, name="run_register"),
]
