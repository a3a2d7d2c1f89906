"""defectkd.core"""
