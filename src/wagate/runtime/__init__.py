"""The process: the node that builds, starts and stops its parts, its HTTP server, and its metrics."""
