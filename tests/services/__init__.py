"""Real services the launcher tests run against, started by the tests themselves (no ../shared at run time)."""
