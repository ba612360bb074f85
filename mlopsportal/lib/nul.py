"""Refuse NUL characters in URLs, queries and form fields before they reach a view: PostgreSQL cannot store or compare
text holding one ("A string literal cannot contain NUL"), so `/models/%00/` or `?q=%00` was a 500."""
from django.core.exceptions import BadRequest
from django.http import Http404

from .problem_types import problem_json

API_PREFIX = "/api/"  # its errors are problem details (RFC 9457), not pages


class RefuseNulMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        api = request.path.startswith(API_PREFIX)
        if "\x00" in request.path:
            if api:
                return problem_json(404, "not-found", "Not found", "There is no such API route.")
            raise Http404("No such page.")  # no page has such a name
        if _holds_nul(request.GET) or (request.method == "POST" and _holds_nul(request.POST)):
            message = "A field holds a NUL character (\\0), which the portal does not accept."
            if api:
                return problem_json(400, "invalid", "Bad request", message)
            raise BadRequest(message)
        return self.get_response(request)


def _holds_nul(query) -> bool:
    return any("\x00" in key or any("\x00" in value for value in values) for key, values in query.lists())
