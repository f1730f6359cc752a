"""``deepshield serve``: a local web page and JSON API around ``deepshield predict`` (see ``app``)."""

from deepshield.serve.app import create_app
from deepshield.serve.server import BackgroundServer, serve

__all__ = ["BackgroundServer", "create_app", "serve"]
