"""Tests of the sandbox browser page: its HTTP control API, its event stream, demo data."""
