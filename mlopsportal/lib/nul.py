"""Refuse NUL characters in URLs, queries and form fields before they reach a view: PostgreSQL cannot store or compare
text holding one ("A string literal cannot contain NUL"), so `/models/%00/` or `?q=%00` was a 500."""
from django.core.exceptions import BadRequest
from django.http import Http404


class RefuseNulMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if "\x00" in request.path:
            raise Http404("No such page.")  # no page has such a name
        if _holds_nul(request.GET) or (request.method == "POST" and _holds_nul(request.POST)):
            raise BadRequest("A field holds a NUL character (\\0), which the portal does not accept.")
        return self.get_response(request)


def _holds_nul(query) -> bool:
    return any("\x00" in key or any("\x00" in value for value in values) for key, values in query.lists())
