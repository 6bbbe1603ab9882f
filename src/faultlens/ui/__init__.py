"""The web UI, served by ``faultlens serve`` on the API port (``/``, ``/traces``, ``/map``...).

Server-rendered pages (Jinja2, htmx) over the same readers the API uses, with charts and
the trace waterfall drawn in the browser from the API's JSON; every asset is vendored in
the package (:mod:`faultlens.ui.assets`), so nothing is fetched from the internet at run
time and nothing needs Node to install. :func:`mount_ui` adds the pages, ``/static`` and an
offline ``/docs`` to the API app (:func:`faultlens.api.app.create_app` calls it); the API's
Host allow-list and auth guard them like every route. See docs/ui.md.
"""

from faultlens.ui.routes import mount_ui

__all__ = ["mount_ui"]
