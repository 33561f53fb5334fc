"""Output: search results and the other commands' answers, written in the format a person or a pipeline asked for.

formats      the format registry: each OutputFormat's writer, and choose_format()
records      machine-readable writers (JSON, JSON Lines, CSV, TSV, paths) and the record of one search result
table        the results table people read on a terminal
preview      `--preview`: each result's thumbnail beside its row, in the terminal
html         `-f html`: one self-contained page of results
sheet        contact sheets: a query's results in one image
links        a folder of symbolic links to the results
insight      what `classify`, `tags` and `duplicates` print
located      what `locate` prints
status_text  `clipsearch status` for people
"""
