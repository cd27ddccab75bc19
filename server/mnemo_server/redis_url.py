"""Redis URLs as Mnemo accepts them, for the cache (cache/redis.py) and the
shared rate limits (ratelimit.py): `redis://`, `rediss://`, `unix://`, and
Redis Cluster as `redis+cluster://`, `rediss+cluster://` or `?cluster=yes`.
Imports no redis-py."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit


def cluster_url(url: str, cluster: bool | None) -> tuple[str, bool]:
    """The URL redis-py understands, and whether it names a cluster
    (`cluster` None: as the URL says; True or False: so). Raises ValueError
    for a URL that is not a Redis URL, or a cluster over a unix socket."""
    parts = urlsplit(url)
    scheme = parts.scheme
    if scheme not in ("redis", "rediss", "unix", "redis+cluster", "rediss+cluster"):
        raise ValueError(f"a Redis URL starts with redis://, rediss:// or unix://, got {url!r}")
    if "+cluster" not in scheme and "cluster=" not in parts.query:
        if cluster and scheme == "unix":
            raise ValueError("Redis Cluster is reached over TCP, not a unix socket")
        return url, bool(cluster)
    is_cluster = scheme.endswith("+cluster")
    if is_cluster:
        scheme = scheme.removesuffix("+cluster")
    query = parse_qsl(parts.query, keep_blank_values=True)
    kept = []
    for name, value in query:
        if name == "cluster":
            is_cluster = value.lower() in ("1", "true", "yes", "on")
        else:
            kept.append((name, value))
    if cluster is not None:
        is_cluster = cluster
    if is_cluster and scheme == "unix":
        raise ValueError("Redis Cluster is reached over TCP, not a unix socket")
    return urlunsplit((scheme, parts.netloc, parts.path, urlencode(kept), parts.fragment)), is_cluster
