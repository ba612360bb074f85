"""Pages of accounts: a user's own settings, the CSRF failure page, and the sign-in page as a locked-out user sees
it."""
from django.conf import settings
from django.contrib import messages
from django.contrib.auth.forms import AuthenticationForm
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_http_methods

from .forms import UserSettingsForm
from .middleware import remember_time_zone
from .models import UserSettings


@require_http_methods(["GET", "POST"])
def user_settings(request):
    """Every signed-in user's own settings (the login middleware sends others to sign in)."""
    mine = UserSettings.objects.filter(user=request.user).first() or UserSettings(user=request.user)
    form = UserSettingsForm(request.POST or None, instance=mine)
    if request.method == "POST" and form.is_valid():
        form.save()
        remember_time_zone(request, request.user)
        messages.success(request, "Saved your settings.")
        return redirect("user_settings")
    return render(request, "registration/user_settings.html", {"form": form, "now": timezone.now()})


def csrf_failure(request, reason=""):
    return render(request, "403_csrf.html", status=403)


def login_locked_out(request, original_response=None, credentials=None):
    """django-axes' lockout response: the sign-in page again, saying why and until when (429 Too Many Requests)."""
    minutes = settings.AXES_COOLOFF_TIME.total_seconds() / 60
    until = timezone.now() + settings.AXES_COOLOFF_TIME
    username = (credentials or {}).get("username") or request.POST.get("username", "")
    form = AuthenticationForm(request, initial={"username": username})
    return render(request, "registration/login.html", {
        "form": form, "next": request.POST.get("next", request.GET.get("next", "")),
        "locked_out": {"limit": settings.AXES_FAILURE_LIMIT, "minutes": f"{minutes:g}",
                       "until": until},
    }, status=429)
