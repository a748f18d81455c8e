"""`python -m bench`: launch-to-dashboard and reload benchmark under injected EHR latency (not a test)."""
