from django.urls import path

from . import pages

app_name = "api_pages"

urlpatterns = [
    path("settings/tokens/", pages.token_list, name="token_list"),
    path("settings/tokens/all/", pages.token_list_all, name="token_list_all"),
    path("settings/tokens/<str:key_id>/revoke/", pages.token_revoke, name="token_revoke"),
]
