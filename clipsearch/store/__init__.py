"""Storage: the SQLite catalogue (the source of truth) and the files derived from it.

catalog  the Catalog: files, vectors, settings; every SQLite failure as a one-line CatalogError
schema   numbered migrations (sqlite-utils Migrations) that take any earlier catalogue to today's
rows     the records the catalogue reads and writes, and how paths are stored
hnsw     the HNSW vector index: a cache of the catalogue's vectors, checked before use
lock     one writer per database
files    atomic writes and file digests for every derived file
"""
