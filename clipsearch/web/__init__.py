"""The resident server (`clipsearch serve`) and `clipsearch web`, a local web page for searching and browsing a
database, on Starlette and uvicorn.

It sits above `output` in the layers: the page is one more way to show what `search` answers.

server      the one resident server: `clipsearch serve`, and `clipsearch web`, the same server with the page
api         the server's API on its private Unix socket, answered by one LocalLibrary
app         the Starlette application of the page: routes, templates and assets, behind the guard
security    what every response goes through: the Host check, the token, the security headers
query       the page's address as its query: the search form read back into QueryOptions, and links
page_state  what the page asks of the database: searches, a photo by id, the facets for the filters
pages       the two pages: results, and one photo shown large
media       pictures by catalogue id only, and pictures dropped on the page
"""
