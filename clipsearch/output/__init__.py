"""Output: search results written in the format a person or a pipeline asked for.

formats  the format registry: each OutputFormat's writer, and choose_format()
records  the fields of one result, shared by every machine-readable format
table    the table people read on a terminal
"""
