"""Scheduled jobs: APScheduler wiring, the leader lock, and the job functions."""
