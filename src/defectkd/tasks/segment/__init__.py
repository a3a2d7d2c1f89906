"""defectkd.tasks.segment"""
