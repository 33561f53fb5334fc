"""`clipsearch web`: a local web page for searching and browsing a database, on Starlette and uvicorn.

It sits above `output` in the layers: the page is one more way to show what `search` answers.
"""
