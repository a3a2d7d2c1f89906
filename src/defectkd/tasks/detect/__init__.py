"""defectkd.tasks.detect"""
