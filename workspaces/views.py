"""The Azure ML workspace page: everyone sees where the portal works and how the last sync went; admins edit the
settings and test the connection."""
from django.conf import settings
from django.contrib.auth.decorators import permission_required
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from . import services
from .forms import WorkspaceForm
from .models import AzureMLWorkspace


@require_http_methods(["GET", "POST"])
@permission_required("workspaces.view_azuremlworkspace", raise_exception=True)
def workspace_detail(request):
    workspace = AzureMLWorkspace.load()
    can_edit = request.user.has_perm("workspaces.change_azuremlworkspace")
    form = WorkspaceForm(instance=workspace) if can_edit else None
    status = 200
    if request.method == "POST":
        if not can_edit:
            return render(request, "403.html", status=403)
        form = WorkspaceForm(request.POST, instance=AzureMLWorkspace.load())
        if form.is_valid():
            services.workspace_update(form=form, actor=request.user)
            return redirect("workspaces:workspace_detail")
        status = 400
    return render(request, "workspaces/workspace.html", {
        "workspace": workspace, "form": form, "backend": settings.MLOPS_BACKEND,
        "credential": settings.MLOPS_AZURE_CREDENTIAL}, status=status)


@require_POST
@permission_required("workspaces.change_azuremlworkspace", raise_exception=True)
def workspace_test(request):
    services.workspace_connection_test(actor=request.user)
    return redirect("workspaces:workspace_detail")
