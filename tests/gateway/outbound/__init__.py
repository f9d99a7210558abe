"""Tests of gateway/outbound/, one file per module."""
