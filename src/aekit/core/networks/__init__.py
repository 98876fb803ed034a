"""Encoder and decoder bodies: MLPs (optionally tied), convolutional stacks for images, and sequence
bodies for windows of a series (temporal convolutions, GRU/LSTM, a Transformer encoder).

All bodies take and return flat batches ``(B, D)``; a conv or sequence body reshapes to its
``input_shape`` internally, so the model, likelihoods and trainer never see image or sequence
shapes. Every shape is inferred from ``input_shape``, never hard-coded. ``mlp``, ``conv`` and ``sequence`` hold them.
"""
