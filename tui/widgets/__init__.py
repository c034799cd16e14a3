"""Widgets shared by the views, one per module."""
