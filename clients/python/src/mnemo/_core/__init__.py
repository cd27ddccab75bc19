"""What both facades (`mnemo.client` and the generated `mnemo.aio`) and the CLI call:
plain functions and small types that make requests, convert responses, encode
metadata values, decide retries and hold connection settings.

    settings     connection settings, credentials, deadlines, request ids
    retry        RetryPolicy: when and how long to wait before trying again
    values       the metadata value codec (also the server's)
    requests     keyword arguments -> mnemo.v1 request messages
    conversions  mnemo.v1 messages -> mnemo.types
    jsonl        the JSON Lines export format
    plainjson    messages and values -> plain JSON for the CLI
    progress     a progress bar on stderr
    streams      the few helpers only the asyncio facade needs
    pb           google.protobuf and google.rpc, imported in one place
"""
