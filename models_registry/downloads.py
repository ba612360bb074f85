"""A file of a version's artifact as a download, for the version page and the API alike: only a file the version's
manifest lists, read through the backend, with the manifest's checksum in `X-Checksum-SHA256`."""
import mimetypes

from django.http import FileResponse, Http404

from mlopsportal.backends import BackendError, get_backend

from .models import ModelVersion


def artifact_file_response(version: ModelVersion, path: str) -> FileResponse:
    entry = next((f for f in version.artifact_files if f["path"] == path), None)
    if entry is None:
        raise Http404("No such file in this version.")
    try:
        handle = get_backend().artifact_open(version.artifact_uri, path)
    except BackendError as exc:
        raise Http404(str(exc)) from exc
    response = FileResponse(handle, as_attachment=True,
                            filename=f"{version.model.name}-v{version.version}-{path.replace('/', '_')}",
                            content_type=mimetypes.guess_type(path)[0] or "application/octet-stream")
    response["X-Checksum-SHA256"] = entry["sha256"]
    return response
