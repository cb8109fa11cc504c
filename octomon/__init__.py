"""octomon: Octopus Energy Home Mini data into InfluxDB, without losing a reading."""

__version__ = "0.1.0"
