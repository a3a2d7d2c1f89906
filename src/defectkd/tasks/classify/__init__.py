"""defectkd.tasks.classify"""
