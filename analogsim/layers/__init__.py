"""Layers: activations, losses, analog/digital linear layers and the network container.

Import what you need from the submodules, e.g. ``from analogsim.layers.activations import
get_activation`` and ``from analogsim.layers.losses import get_loss``.
"""
