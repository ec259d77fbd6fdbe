"""Run and sweep directories as records: file names, atomic writes, summaries, statuses, locks.
No TensorFlow, and no knowledge of configs or models."""
