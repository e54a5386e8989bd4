"""HTTP layer: one module per resource, each with a ``setup_*`` that adds its routes."""
