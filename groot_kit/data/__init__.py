"""groot_kit.data"""
