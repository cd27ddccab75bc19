"""The Python client of the Mnemo memory server.

The generated protobuf messages and gRPC stubs live in `mnemo.v1`, the one
place the server imports them from too.
"""

__version__ = "0.1.0"
