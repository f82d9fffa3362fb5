"""The process: its HTTP server, its metrics, and (soon) the node that builds, starts and stops everything."""
