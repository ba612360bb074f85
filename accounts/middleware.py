"""Times on the pages in the signed-in user's own time zone (kept in the session: no query per request)."""
import zoneinfo

from django.utils import timezone

from .models import UserSettings

SESSION_KEY = "portal_time_zone"


class UserTimeZoneMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        name = request.session.get(SESSION_KEY, "") if request.user.is_authenticated else ""
        try:
            timezone.activate(zoneinfo.ZoneInfo(name)) if name else timezone.deactivate()
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            timezone.deactivate()
        try:
            return self.get_response(request)
        finally:
            timezone.deactivate()


def remember_time_zone(request, user) -> None:
    """Put the user's chosen zone in their session (at sign-in, and when they change it)."""
    name = UserSettings.objects.filter(user=user).values_list("time_zone", flat=True).first() or ""
    if name:
        request.session[SESSION_KEY] = name
    else:
        request.session.pop(SESSION_KEY, None)
