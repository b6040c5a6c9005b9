"""groot_kit.sim"""
