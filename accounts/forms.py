import zoneinfo

from django import forms
from django.conf import settings

from .models import UserSettings


class UserSettingsForm(forms.ModelForm):
    time_zone = forms.ChoiceField(required=False, label="Time zone", help_text="Times on every page are shown in it.")

    class Meta:
        model = UserSettings
        fields = ["time_zone"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["time_zone"].choices = [("", f"The portal's default ({settings.TIME_ZONE})"),
                                            *((name, name) for name in sorted(zoneinfo.available_timezones()))]
