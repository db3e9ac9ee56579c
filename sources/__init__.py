"""dlt sources for meeting-intelligence APIs, one package per API."""
