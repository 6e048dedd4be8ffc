"""What makes and judges the models: damage synthesis, training, evaluation, baselines.

Nothing in `pipeline/` or `models/` imports this package.
"""
