"""groot_kit.train"""
