"""Jobs: the SQLite store and blobs, the queue and runner, applying progress, naming, results."""
