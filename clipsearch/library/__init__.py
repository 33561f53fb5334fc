"""The centre: `Library`, one clipsearch database, which the CLI, the web page and the server are layers over.

api     Library: index, search, similar, classify, locate, duplicates, tag, status, forget
local   LocalLibrary: the same questions answered in this process, the model and index kept loaded
remote  asking the resident server over HTTP on its private Unix socket; the socket's place and checks
wire    the JSON forms of requests and answers, checked on both sides
"""

from clipsearch.library.api import Library, Results

__all__ = ["Library", "Results"]
