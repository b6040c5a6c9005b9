"""groot_kit.runtime"""
