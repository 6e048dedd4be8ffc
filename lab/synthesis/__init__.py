"""Synthetic damage (craquelure, paint loss) and the hole masks the inpainter trains on."""
