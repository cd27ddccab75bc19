"""The API key commands: keys create, keys list and keys revoke."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from mnemo import types
from mnemo.cli.context import EXIT_OK, Context
from mnemo.cli.output import (
    print_json,
    table,
    to_json,
    when,
)


def key_rows(keys: Iterable[types.ApiKey]) -> Iterable[Sequence[Any]]:
    for k in keys:
        restricted = ",".join([*k.user_ids, *k.agent_ids]) or "-"
        state = "revoked" if k.revoke_time else "active"
        yield (
            k.id,
            k.role.value.lower(),
            k.tenant,
            k.display_name or "-",
            restricted,
            state,
            when(k.create_time),
        )


KEY_HEADERS = ("ID", "ROLE", "TENANT", "NAME", "RESTRICTED TO", "STATE", "CREATED")


def cmd_keys_create(ctx: Context) -> int:
    a = ctx.args
    created = ctx.client.create_api_key(
        a.role,
        tenant=a.tenant,
        user_ids=a.user_ids,
        agent_ids=a.agent_ids,
        display_name=a.display_name,
        ttl=a.ttl,
    )
    if ctx.json:
        print_json(to_json(created.raw), ctx.out)
    else:
        table(KEY_HEADERS, key_rows([created.api_key]), ctx.out)
        ctx.out.write(f"\nsecret: {created.secret}\n")
        ctx.err.write("the secret is shown only now; store it safely\n")
    return EXIT_OK


def cmd_keys_list(ctx: Context) -> int:
    keys = list(ctx.client.iter_api_keys(show_revoked=ctx.args.show_revoked, tenant=ctx.args.tenant))
    if ctx.json:
        print_json({"apiKeys": [to_json(k.raw) for k in keys]}, ctx.out)
    else:
        table(KEY_HEADERS, key_rows(keys), ctx.out)
    return EXIT_OK


def cmd_keys_revoke(ctx: Context) -> int:
    key = ctx.client.revoke_api_key(ctx.args.id)
    if ctx.json:
        print_json(to_json(key.raw), ctx.out)
    else:
        ctx.out.write(f"revoked {key.id}\n")
    return EXIT_OK
