"""The API token pages: your own tokens (made here, shown once, revoked here), and every user's for admins."""
from django.contrib import messages
from django.contrib.auth.decorators import permission_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from mlopsportal.lib.refusals import in_words

from . import tokens
from .forms import TokenForm
from .models import ApiToken


@never_cache
@require_http_methods(["GET", "POST"])
def token_list(request):
    """Every signed-in user may make tokens: a token does what its user's role may, or less."""
    form = TokenForm(request.POST or None)
    made = None
    if request.method == "POST" and form.is_valid():
        try:
            token, made = tokens.token_create(user=request.user, name=form.cleaned_data["name"],
                                              days=form.cleaned_data["days"],
                                              read_only=form.cleaned_data["read_only"])
        except ValidationError as exc:
            for field, errors in exc.message_dict.items():
                form.add_error(field if field in form.fields else None, errors)
        else:
            form = TokenForm()
            messages.success(request, f"Made {token}. Copy it now: it is not shown again.")
    status = 400 if request.method == "POST" and made is None else 200
    return render(request, "api/tokens.html", {
        "form": form, "made": made, "tokens": ApiToken.objects.filter(user=request.user).select_related("user"),
        "may_see_all": request.user.has_perm("api.view_apitoken")}, status=status)


@require_GET
@permission_required("api.view_apitoken", raise_exception=True)
def token_list_all(request):
    return render(request, "api/tokens_all.html", {
        "tokens": ApiToken.objects.select_related("user", "revoked_by").order_by("revoked_at", "-created_at")[:500]})


@require_POST
def token_revoke(request, key_id):
    token = get_object_or_404(ApiToken.objects.select_related("user"), key_id=key_id)
    if token.user_id != request.user.pk and not request.user.has_perm("api.delete_apitoken"):
        raise PermissionDenied
    try:
        done = tokens.token_revoke(token=token, actor=request.user)
    except ValidationError as exc:
        messages.error(request, in_words(exc))
    else:
        (messages.success if done else messages.info)(
            request, f"Revoked {token}." if done else f"{token} was already revoked.")
    if request.POST.get("from") == "all" and request.user.has_perm("api.view_apitoken"):
        return redirect("api_pages:token_list_all")
    return redirect("api_pages:token_list")
