"""collectstatic, as `portal.py run` does it on every start: a file is compressed once, not at each start."""
import os

from django.core.files.storage import FileSystemStorage

from mlopsportal.lib.staticfiles import HashedCompressedStorage


def collect(location, files: dict[str, str]) -> HashedCompressedStorage:
    """What collectstatic does: copy the files in, then let the storage post-process them."""
    for name, text in files.items():
        (location / name).write_text(text)
    storage = HashedCompressedStorage(location=location, base_url="/static/")
    source = FileSystemStorage(location=location)
    list(storage.post_process({name: (source, name) for name in files}))
    storage.load_manifest()
    return storage


def test_a_second_collect_compresses_nothing_again_and_a_changed_file_is_compressed(tmp_path, settings):
    settings.STATIC_ROOT = tmp_path
    script = "console.log('the portal');\n" * 500
    storage = collect(tmp_path, {"app.js": script, "app.js.map": "{}" * 500})
    hashed = storage.stored_name("app.js")
    assert hashed != "app.js" and (tmp_path / f"{hashed}.gz").exists() and (tmp_path / f"{hashed}.br").exists()
    assert not (tmp_path / "app.js").exists()  # only hashed names are kept: each holds one content for good
    assert not list(tmp_path.glob("*.map.gz")) and not list(tmp_path.glob("*.map.br"))  # source maps as they are

    long_ago = 1_000_000_000
    for suffix in (".gz", ".br"):
        os.utime(tmp_path / f"{hashed}{suffix}", (long_ago, long_ago))
    storage = collect(tmp_path, {"app.js": script, "app.js.map": "{}" * 500})  # the next start
    assert storage.stored_name("app.js") == hashed
    assert all(os.stat(tmp_path / f"{hashed}{suffix}").st_mtime == long_ago for suffix in (".gz", ".br"))

    storage = collect(tmp_path, {"app.js": script + "console.log('changed');\n", "app.js.map": "{}"})
    changed = storage.stored_name("app.js")
    assert changed != hashed and (tmp_path / f"{changed}.gz").exists() and (tmp_path / f"{changed}.br").exists()
