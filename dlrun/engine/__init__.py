"""The only door to TensorFlow and Keras: backend set-up, model building, base models, input
streams, callbacks, checkpoints and the epoch loop. TensorFlow is imported lazily, on first use."""
