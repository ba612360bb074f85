from django.contrib.auth import views as auth_views
from django.urls import path

from .views import user_settings

urlpatterns = [
    path("login/", auth_views.LoginView.as_view(), name="login"),
    path("settings/", user_settings, name="user_settings"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
]
