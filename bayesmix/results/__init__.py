"""Fitted results with one interface for both estimators, and their persistence."""
