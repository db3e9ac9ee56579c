"""The `meeting-elt` CLI, ready-made pipelines and orchestration glue."""
