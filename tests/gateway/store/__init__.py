"""Tests of gateway/store/, one file per module."""
