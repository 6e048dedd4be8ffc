"""Evaluation: detection and inpainting metrics, classical baselines, per-style breakdowns."""
