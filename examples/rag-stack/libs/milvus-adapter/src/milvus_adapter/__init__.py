"""Milvus client adapter"""
