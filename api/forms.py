"""The form that makes an API token."""
from django import forms
from django.conf import settings


class TokenForm(forms.Form):
    name = forms.CharField(max_length=60, help_text="What uses it, e.g. azure-devops-cd.")
    read_only = forms.BooleanField(required=False, label="Read-only",
                                   help_text="It may read everything you may, but start, change or decide nothing.")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["days"] = forms.IntegerField(min_value=1, max_value=settings.MLOPS_API_TOKEN_MAX_DAYS, initial=90,
                                                 label="Expires in (days)")
        self.order_fields(["name", "days", "read_only"])
