"""Leaves every layer may use: errors, config parsing, checkpoint reading, run folders, device, logging."""
