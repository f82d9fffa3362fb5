"""Guards on what the gateway fetches or calls on the network: the SSRF guard and the media fetcher."""
