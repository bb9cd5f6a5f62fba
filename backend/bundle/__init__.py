"""The district bundle (SPEC §3): validate the whole document, then upsert it in one transaction."""

from backend.bundle.importer import BundleError, ImportSummary, import_bundle

__all__ = ["BundleError", "ImportSummary", "import_bundle"]
