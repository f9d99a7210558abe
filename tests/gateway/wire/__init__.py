"""Tests of gateway/wire/, one file per module."""
