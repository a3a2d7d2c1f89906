"""Defect classification: class folders, CSV and NEU-DET names, accuracy and macro F1 (plug-in: task.py)."""
