"""Indexing: crawl folders, decode and embed what changed, commit batch by batch as the one writer.

crawl     walk the folders and list candidate image files
progress  what indexing is asked (IndexOptions), what it tells (Reporter) and what it did (IndexStats)
prepare   read, hash and decode files in worker threads
pipeline  the Indexer: plan, embed, commit, remove what vanished
forget    remove files and folders from a database
"""
