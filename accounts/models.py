"""What each user sets for themselves: the time zone the pages show times in."""
import zoneinfo

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models


def validate_time_zone(value: str) -> None:
    if value not in zoneinfo.available_timezones():
        raise ValidationError(f"“{value[:60]}” is not a time zone of the IANA database (e.g. Europe/Paris).")


class UserSettings(models.Model):
    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="portal_settings")
    time_zone = models.CharField(max_length=64, blank=True, validators=[validate_time_zone],
                                 help_text="Times on the pages are shown in this zone; blank: the portal's default.")

    class Meta:
        verbose_name_plural = "user settings"
