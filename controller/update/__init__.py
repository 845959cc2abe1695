"""Signed firmware updates: image format and signature check, A/B slots with a boot record."""
