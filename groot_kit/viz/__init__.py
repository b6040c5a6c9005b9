"""groot_kit.viz"""
