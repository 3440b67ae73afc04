"""Qdrant client adapter"""
