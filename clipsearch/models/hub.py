"""Reaching model weights: cached weights load offline, and an unreachable hub fails fast with one line."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator


@contextlib.contextmanager
def quiet_root_logger() -> Iterator[None]:
    # open_clip logs through the root logger; with no handler Python would print its warnings.
    root = logging.getLogger()
    handler = logging.NullHandler()
    root.addHandler(handler)
    try:
        yield
    finally:
        root.removeHandler(handler)


@contextlib.contextmanager
def hub_offline() -> Iterator[None]:
    """Within the block, huggingface_hub uses its cache only, and logs no retries."""
    try:
        from huggingface_hub import constants
        from huggingface_hub.utils import logging as hub_logging
    except ImportError:
        yield
        return
    # Offline, huggingface_hub logs every retry with a traceback; our one-line error says what to do.
    hub_logging.set_verbosity_error()
    previous = constants.HF_HUB_OFFLINE
    constants.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        constants.HF_HUB_OFFLINE = previous


def hub_unreachable(timeout: float = 3.0) -> str | None:
    """Why the model hub cannot be reached, or None: a quick check that spares offline users minutes of retries."""
    import os
    import socket
    from urllib.parse import urlparse

    try:
        from huggingface_hub import constants
    except ImportError:
        return None
    if constants.HF_HUB_OFFLINE:
        return "offline mode is on (HF_HUB_OFFLINE)"
    if any(os.environ.get(name) for name in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")):
        return None  # through a proxy, only the download itself can tell
    endpoint = urlparse(constants.ENDPOINT)
    host = endpoint.hostname or ""
    try:
        socket.create_connection((host, endpoint.port or 443), timeout=timeout).close()
    except OSError as error:
        return f"cannot reach {host} ({error.strerror or error})"
    return None
