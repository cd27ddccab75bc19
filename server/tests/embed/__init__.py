"""Tests of the embedding layer (mnemo_server.embed)."""
