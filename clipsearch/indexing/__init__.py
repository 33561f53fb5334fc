"""Indexing: crawl folders, decode and embed what changed, commit batch by batch as the one writer.

What a run has to say goes to the `logging` logger "clipsearch" (INFO); progress goes to the caller's Reporter.

request         what indexing is asked (IndexOptions), how far along it is (Reporter) and what it did (IndexStats)
pipeline        the Indexer: lock, plan, crawl, decode, embed, commit, remove what vanished, finish a switch
roots           which folders a run crawls, each with which options
crawl           walk the folders and list candidate image files
plan            what a crawl found, set against the catalogue: what to read, what is unchanged, what is gone
prepare         read, hash and decode files in worker threads, or find a row with the same content
batches         prepared files routed to what each needs, and committed together
journal         the files in flight, so that one which killed a run is known as a suspect
quarantine      suspects decoded in a child process of their own
facts           the dates and cameras of photos indexed by an earlier version, read again
regions         the grid of region crops of `index --regions`
tags            new photos tagged as they are committed, with the database's vocabulary
switch          switching a database to another model without ever leaving it unable to answer
cluster         `index --ray`: embedding on Ray actors while this process writes
cluster_worker  what a Ray actor does: read, hash, decode and embed chunks of files
forget          remove files and folders from a database
"""
