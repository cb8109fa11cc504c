"""Where readings go: InfluxDB, the cache, the sync."""
