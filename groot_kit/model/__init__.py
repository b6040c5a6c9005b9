"""groot_kit.model"""
