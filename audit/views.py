"""The audit page, for managers and admins: the whole log with filters, old → new values, and CSV."""
from django.contrib.auth.decorators import permission_required
from django.shortcuts import render
from django.views.decorators.http import require_GET

from mlopsportal.lib.exports import csv_response

from . import selectors
from .forms import AuditFilterForm


@require_GET
@permission_required("audit.read_audit_log", raise_exception=True)
def audit_log(request):
    form = AuditFilterForm(request.GET)
    events = selectors.audit_log()
    if form.is_valid():
        data = form.cleaned_data
        since, until = form.window()
        events = selectors.audit_log(who=data["who"], action=data["action"], content_type=form.content_type(),
                                     text=data["object"], since=since, until=until)
    elif form.errors:
        events = events.none()
    if request.GET.get("format") == "csv":
        return csv_response(selectors.audit_rows(events), "audit-log.csv")
    before = request.GET.get("before", "")
    page, older = selectors.audit_page(events, before=int(before) if before.isdigit() else None)
    query = request.GET.copy()
    for name in ("before", "format"):
        query.pop(name, None)
    filters = query.urlencode()
    return render(request, "audit/audit_log.html", {
        "form": form, "events": page, "paged": before.isdigit(), "filters": filters,
        "older_url": f"?{filters}&before={older}" if older else "",
        "csv_url": f"?{filters}&format=csv" if filters else "?format=csv"})
