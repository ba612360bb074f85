"""The top bar's count of promotions waiting for the signed-in user's decision (approvers only: one COUNT query)."""
from django.utils.functional import SimpleLazyObject

from . import selectors


def waiting(request):
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}
    return {"waiting_count": SimpleLazyObject(lambda: selectors.promotions_waiting_count(user))}
