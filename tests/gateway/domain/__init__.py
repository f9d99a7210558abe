"""Tests of gateway/domain/, one file per module."""
