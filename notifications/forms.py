from django import forms

from .models import Event, NotificationSettings


class NotificationSettingsForm(forms.ModelForm):
    events = forms.MultipleChoiceField(choices=Event.choices, required=False, widget=forms.CheckboxSelectMultiple,
                                       label="Tell me when", help_text="None ticked: all of them.")

    class Meta:
        model = NotificationSettings
        fields = ["email", "chat_url", "events"]
        widgets = {"chat_url": forms.TextInput(attrs={"autocomplete": "off", "spellcheck": "false",
                                                      "placeholder": "https://….webhook.office.com/… or https://hooks.slack.com/…"})}
