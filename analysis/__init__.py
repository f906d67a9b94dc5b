"""Turning observations and ground truth into numbers, tables and figures (pandas, matplotlib)."""
