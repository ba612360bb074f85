"""A polled fragment (a template partial that htmx asks for every few seconds) and how its polling ends: once what it
shows has settled, the answer is 286, which makes htmx stop polling, and, unless told otherwise, `HX-Refresh` so the
whole page is shown once more with the actions of its settled state."""
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django_htmx.http import HttpResponseStopPolling


def polled_fragment(request: HttpRequest, partial: str, context: dict, *, settled: bool,
                    refresh: bool = True) -> HttpResponse:
    response = render(request, partial, context)
    if settled:
        response.status_code = HttpResponseStopPolling.status_code
        if refresh:
            response["HX-Refresh"] = "true"
    return response
