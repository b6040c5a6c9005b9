"""groot_kit.export"""
