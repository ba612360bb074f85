"""Static files as `portal.py run` collects them on every start: hashed names, compressed by WhiteNoise once.

Compressing is the slow part of collectstatic (Brotli at its best ratio: about 25 s on two cores for the API docs'
bundles and their source maps), and it was done again on every start although nothing had changed. A hashed name
says what the file holds, so a hashed file that already has its .gz or .br beside it is not compressed again; only
hashed files are kept, so every compressed file is one of those.
"""
from whitenoise.storage import CompressedManifestStaticFilesStorage


class HashedCompressedStorage(CompressedManifestStaticFilesStorage):
    @property
    def keep_only_hashed_files(self) -> bool:
        return True  # compress_files below relies on it: an unhashed name could hold new content

    def compress_files(self, paths):
        fresh = [path for path in paths if not (self.exists(f"{path}.gz") or self.exists(f"{path}.br"))]
        yield from super().compress_files(fresh)
