from django.urls import path

from . import views

app_name = "workspaces"
urlpatterns = [
    path("workspace/", views.workspace_detail, name="workspace_detail"),
    path("workspace/test/", views.workspace_test, name="workspace_test"),
]
