"""Small helpers shared by the Python side"""
