"""Native op implementations: one op (or small family) per module.

See :mod:`edgeai.ops._base` for the contract and the registry.
"""
