"""Hide secrets before anything is shown: ``faultlens config show``, ``/readyz``, logs, errors.

One set of rules, used everywhere a configured value can leave the process:

- a URL keeps its scheme, host, port and path; the password of ``user:password@`` becomes
  ``***`` and every query value becomes ``***`` (API keys often ride in the query);
- a webhook URL (a key path through a ``webhook`` section) keeps only scheme, host and port:
  hooks such as Slack's or Discord's carry their secret in the path;
- bearer tokens, passwords and similar keys (:data:`SECRET_KEY`) become ``***``, a list of
  them a list of ``***`` (how many are configured still shows);
- ``headers`` mappings (exporter headers: ``authorization``, ``api-key``, ...) keep their
  names, every value becomes ``***``;
- free text (an error message, a log argument) has every URL in it redacted as above and
  ``Bearer <token>`` made ``Bearer ***``.

Paths to TLS files are not secrets (the key itself stays on disk) and are shown.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

__all__ = ["MASK", "SECRET_KEY", "redact_text", "redact_tree", "redact_url"]

MASK = "***"

# Keys whose values are secrets wherever they appear in the config tree.
SECRET_KEY = re.compile(r"(^|_)(tokens?|secrets?|passwords?|passwd|api_?keys?|credentials?)$", re.IGNORECASE)
_URL_IN_TEXT = re.compile(r"\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s'\"<>,;)\]}]+")
_BEARER = re.compile(r"(\bbearer\s+)[^\s'\",;]+", re.IGNORECASE)


def redact_url(url: str, *, hide_path: bool = False) -> str:
    """``https://u:pw@h:1/p?k=v`` -> ``https://u:***@h:1/p?k=***``; with ``hide_path``,
    ``https://u:***@h:1/***``. A gRPC target without a scheme (``u:pw@h:1``) is handled too;
    a value that is not a URL comes back unchanged."""
    schemeless = "://" not in url
    if schemeless and "@" not in url.split("/", 1)[0]:
        return url
    try:
        parts = urlsplit("//" + url if schemeless else url)
        port = parts.port  # raises for a malformed port
    except ValueError:
        return MASK
    netloc = parts.hostname or ""
    if ":" in netloc:  # IPv6 literal
        netloc = f"[{netloc}]"
    if port is not None:
        netloc = f"{netloc}:{port}"
    if parts.username is not None or parts.password is not None:
        userinfo = parts.username or ""
        if parts.password is not None:
            userinfo = f"{userinfo}:{MASK}"
        netloc = f"{userinfo}@{netloc}"
    if hide_path:
        hidden = bool(parts.path.strip("/") or parts.query or parts.fragment)
        shown = urlunsplit((parts.scheme, netloc, "/" + MASK if hidden else parts.path, "", ""))
    else:
        query = parts.query
        if query:
            pairs = parse_qsl(query, keep_blank_values=True)
            query = urlencode([(k, MASK) for k, _ in pairs], safe="*") if pairs else MASK
        shown = urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment and MASK))
    return shown.removeprefix("//") if schemeless else shown


def redact_text(text: str) -> str:
    """Redact every URL and bearer token in free text (error messages, log arguments)."""
    text = _URL_IN_TEXT.sub(lambda m: redact_url(m.group(0)), text)
    return _BEARER.sub(lambda m: m.group(1) + MASK, text)


def redact_tree(tree: Any, path: tuple[str, ...] = ()) -> Any:
    """A copy of a JSON-like tree (a dumped config, ``/readyz`` details) with secrets hidden.

    ``path`` is the key path of ``tree`` itself; the rules look at the last key and at
    whether a ``webhook`` section encloses the value.
    """
    key = path[-1] if path else ""
    if isinstance(tree, Mapping):
        if key.lower() == "headers":
            return {str(k): MASK for k in tree}
        return {str(k): redact_tree(v, (*path, str(k))) for k, v in tree.items()}
    if isinstance(tree, list | tuple):
        return [redact_tree(v, path) for v in tree]
    if tree is None or isinstance(tree, bool | int | float):
        return tree
    if SECRET_KEY.search(key):
        return MASK
    text = str(tree)
    if any(p.lower() == "webhook" for p in path[:-1]) and key.lower().endswith("url"):
        return redact_url(text, hide_path=True)
    if key.lower().endswith(("url", "endpoint")):
        return redact_url(text)
    return redact_text(text)
