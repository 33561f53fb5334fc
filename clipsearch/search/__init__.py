"""Searching: from a query to ranked results, in this process or through a running server.

request   what a search is asked (QueryKind, QueryOptions)
results   what it answers (SearchResult)
searcher  the Searcher: embeds queries, searches the index, joins the catalogue
router    one entry point: asks a running server when it may, else searches in-process
protocol  the server's socket, its folder's checks, and the wire format
client    asking a running server
server    `clipsearch serve`: one process that keeps the model and the index in memory
status    what `clipsearch status` reports
"""
