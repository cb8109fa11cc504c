"""The running monitor: one cycle, the loop, where readings go, backfill, status."""
