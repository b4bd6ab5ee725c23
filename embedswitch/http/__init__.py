"""The HTTP API: a thin FastAPI layer over one Engine."""

from .app import create_app

__all__ = ["create_app"]
