"""A user's notification settings, and the deliveries made to them."""
from django.contrib import messages
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from .forms import NotificationSettingsForm
from .models import Delivery, NotificationSettings


@require_http_methods(["GET", "POST"])
def notification_settings(request):
    """Every signed-in user has their own (the login middleware sends others to sign in)."""
    prefs = NotificationSettings.objects.filter(user=request.user).first() or NotificationSettings(user=request.user)
    form = NotificationSettingsForm(request.POST or None, instance=prefs)
    if request.method == "POST" and form.is_valid():
        form.save()
        messages.success(request, "Saved your notification settings.")
        return redirect("notifications:settings")
    deliveries = Delivery.objects.filter(user=request.user).defer("body")[:30]
    return render(request, "notifications/settings.html", {"form": form, "deliveries": deliveries,
                                                           "has_email": bool(request.user.email)})
