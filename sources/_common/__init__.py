"""Shared machinery for every meeting-elt source: HTTP, auth, pagination, errors, state."""
