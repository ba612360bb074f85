"""The webhook pages, for admins: subscriptions, each one's delivery log with every attempt, and redeliver."""
from django.contrib import messages
from django.contrib.auth.decorators import permission_required
from django.db.models import Prefetch
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from mlopsportal.lib.queue import QueueUnavailable
from mlopsportal.lib.refusals import in_words

from . import services
from .forms import SubscriptionForm
from .models import Attempt, Delivery, Subscription
from .signing import REPLAY_WINDOW_SECONDS


@require_http_methods(["GET", "POST"])
@permission_required("webhooks.view_subscription", raise_exception=True)
def subscription_list(request):
    form = SubscriptionForm(request.POST or None)
    if request.method == "POST":
        if not request.user.has_perm("webhooks.add_subscription"):
            return render(request, "403.html", status=403)
        if form.is_valid():
            subscription = services.subscription_save(form=form, actor=request.user)
            messages.success(request, f"Subscribed {subscription}. Its signing secret is on its page.")
            return redirect("webhooks:subscription_detail", pk=subscription.pk)
    return render(request, "webhooks/list.html", {"form": form, "subscriptions": Subscription.objects.all()},
                  status=400 if request.method == "POST" else 200)


@require_GET
@permission_required("webhooks.view_subscription", raise_exception=True)
def subscription_detail(request, pk):
    subscription = get_object_or_404(Subscription, pk=pk)
    deliveries = (subscription.deliveries.prefetch_related(Prefetch("attempt_log", queryset=Attempt.objects.all()))
                  [:100])
    return render(request, "webhooks/detail.html", {
        "subscription": subscription, "deliveries": deliveries, "window": REPLAY_WINDOW_SECONDS,
        "may_change": request.user.has_perm("webhooks.change_subscription")})


@require_POST
@permission_required("webhooks.change_subscription", raise_exception=True)
def delivery_redeliver(request, pk):
    delivery = get_object_or_404(Delivery.objects.select_related("subscription"), pk=pk)
    try:
        services.delivery_redeliver(delivery=delivery, actor=request.user)
    except QueueUnavailable as exc:
        messages.error(request, in_words(exc))
    else:
        messages.success(request, f"Sending {delivery} again.")
    return redirect("webhooks:subscription_detail", pk=delivery.subscription_id)


@require_POST
@permission_required("webhooks.delete_subscription", raise_exception=True)
def subscription_delete(request, pk):
    subscription = get_object_or_404(Subscription, pk=pk)
    services.subscription_delete(subscription=subscription, actor=request.user)
    messages.success(request, f"Deleted webhook {subscription}.")
    return redirect("webhooks:subscription_list")
