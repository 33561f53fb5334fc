"""Storage: the SQLite catalogue (the source of truth) and the files derived from it.

catalog        the Catalog: owns the one connection, hands out the repositories below, numbers changes
connection     the one sqlite3 connection, its transaction() that nests as savepoints, the Repository base
sqlite_guard   every SQLite failure as a one-line CatalogError naming the catalogue (`@guarded`, `translated`)
vectors        VectorTable: a table of vectors with ids, change numbers and tombstones (files' and regions')
files          FilesRepository (`catalog.files`): the indexed files, their facts and vectors
regions        RegionsRepository (`catalog.regions`): the region crops' vectors of `index --regions`
crawl_memory   RootsRepository and FailuresRepository (`catalog.roots`, `catalog.failures`)
tags           TagsRepository (`catalog.tags`): zero-shot tags and the vocabulary's label vectors
settings       SettingsRepository (`catalog.settings`): named values, as text or JSON
staging        StagingRepository (`catalog.staging`, a model switch) and InFlightRepository (`catalog.in_flight`)
hash_reader    HashReader: rows by content hash from worker threads, each on a read-only connection
schema         numbered migrations (sqlite-utils Migrations) that take any earlier catalogue to today's
rows           the records the catalogue reads and writes, and how paths are stored
hnsw           the HNSW vector index: a cache of a vector table, checked before use
lock           one writer per database
folder         the database folder: created private, refused for writing when others could tamper with it
"""
