"""Tests of gateway/faces/, one file per module."""
