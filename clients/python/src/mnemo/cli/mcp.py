"""The mcp command: serve the memory tools over the Model Context Protocol."""

from __future__ import annotations

from mnemo.cli.context import EXIT_OK, Context, UsageError


def cmd_mcp(ctx: Context) -> int:
    try:
        import mnemo.mcp as mcp_server
    except ImportError as exc:
        raise UsageError(f"mnemo mcp needs the mcp extra: pip install 'mnemo-client[mcp]' ({exc})") from None
    a = ctx.args
    options = mcp_server.Options(
        address=getattr(a, "address", None),
        api_key=getattr(a, "api_key", None),
        tls=True if getattr(a, "tls", False) else None,
        ca_file=getattr(a, "ca_file", None),
        cert_file=getattr(a, "cert_file", None),
        key_file=getattr(a, "key_file", None),
        timeout=getattr(a, "timeout", 30.0),
        scope=mcp_server.Scope(user_id=a.user_id or "", agent_id=a.agent_id or "", run_id=a.run_id or ""),
        http=a.http,
        http_auth=a.http_auth,
    )
    mcp_server.run(options)
    return EXIT_OK
