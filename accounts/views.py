"""Pages of accounts: the CSRF failure page, and the sign-in page as a locked-out user sees it."""
from django.conf import settings
from django.contrib.auth.forms import AuthenticationForm
from django.shortcuts import render
from django.utils import timezone


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
