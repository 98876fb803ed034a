"""Encoder and decoder bodies: MLPs (optionally tied), convolutional stacks for images, and sequence
bodies for windows of a series (temporal convolutions, GRU/LSTM, a Transformer encoder).

All bodies take and return flat batches ``(B, D)``; a conv or sequence body reshapes to its
``input_shape`` internally, so the model, likelihoods and trainer never see image or sequence
shapes. Every shape is inferred from ``input_shape``, never hard-coded.
"""

from .conv import ConvDecoder, ConvEncoder
from .mlp import ACTIVATIONS, DERIVATIVE_FROM_OUTPUT, MLP, TiedMLP, activation, frobenius_closed
from .sequence import (AttentionDecoder, AttentionEncoder, RNNDecoder, RNNEncoder, TCNDecoder, TCNEncoder,
                       series_shape)

__all__ = ["ACTIVATIONS", "DERIVATIVE_FROM_OUTPUT", "MLP", "AttentionDecoder", "AttentionEncoder", "ConvDecoder",
           "ConvEncoder", "RNNDecoder", "RNNEncoder", "TCNDecoder", "TCNEncoder", "TiedMLP", "activation",
           "frobenius_closed", "series_shape"]
