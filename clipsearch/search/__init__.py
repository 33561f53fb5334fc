"""Searching one open database in this process: from a query to ranked results.

request      what a search is asked (QueryKind, QueryOptions, Filters, Term) and query_options(), its builder
results      what it answers (Result, SearchAnswer)
searcher     the Searcher: embeds queries, searches the index, joins the catalogue
embedding    queries to vectors, through the query model when it can, else the model itself
candidates   which photos a filter lets through, and the nearest of them
region_hits  text queries matched against region vectors (`index --regions`)
status       what `clipsearch status` reports, judged from files and records alone
"""
