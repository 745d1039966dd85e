"""Layers: activations, losses, analog/digital linear and conv layers, pooling, the network.

Import what you need from the submodules, e.g. ``from analogsim.layers.activations import
get_activation``, ``from analogsim.layers.losses import get_loss`` and
``from analogsim.layers.conv import AnalogConv2d`` (docs/conv.md).
"""
