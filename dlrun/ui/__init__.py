"""What a person sees: console output (progress, tables, quiet JSON mode) and plots. No TensorFlow."""
