"""The single-run use cases over the engine: train, evaluate, resume, validate, and listing runs."""
