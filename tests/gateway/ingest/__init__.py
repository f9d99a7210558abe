"""Tests of gateway/ingest/, one file per module."""
