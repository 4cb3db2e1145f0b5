"""Applications built on the recurrent core: one module per task."""
