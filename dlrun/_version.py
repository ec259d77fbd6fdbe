"""The one home of dlrun's version (read by packaging, `dlrun env`, run summaries and the data cache)."""

__version__ = "0.2.0"
