"""The platform's contract: its field formats and how a scan maps onto its rows."""
