"""moto's S3 server for the benchmarks, with a faster ListObjectsV2 (same results).

moto 5.2 sorts every key of the bucket again for each page of 1,000 keys, then renders the
page through its generic serializer at about 1.3 ms per key: listing 5,000 keys takes moto
~7 s and 100,000 keys minutes, so the redeploy and no-op scenarios would measure moto, not the
clients. These patches (benchmarks only, never the tests or the product) keep the sorted key
names and serve each page by bisection, and render the page's XML directly. The response has
the same keys, sizes, ETags, dates and continuation tokens as moto's for what the benchmarks
send (no delimiter, no owner, unversioned buckets); any other listing falls
back to moto's own code.

Every request is logged by werkzeug on stderr (`"PUT /bucket/key HTTP/1.1" 200`): bench.py
counts the PUTs of each run from that log.

Usage: python bench/moto_server.py PORT
"""

import bisect
import sys
from urllib.parse import quote
from xml.sax.saxutils import escape

from moto.s3 import models, responses
from moto.server import main

_original = models.S3Backend.list_objects_v2
_sorted_names: dict = {}


def _fast_list_objects_v2(
    self, bucket, prefix, delimiter, continuation_token, start_after, max_keys
):
    if delimiter or getattr(bucket, "is_versioned", False) or not isinstance(
        getattr(bucket, "keys", None), models._VersionedKeyStore
    ):
        return _original(
            self, bucket, prefix, delimiter, continuation_token, start_after, max_keys
        )
    keys = bucket.keys
    cached = _sorted_names.get(id(bucket))
    # The names change only by adding or deleting keys; the benchmarks never delete, so the
    # count identifies the set of names. Each name's current object is read fresh below.
    if cached is None or cached[0] != len(keys):
        cached = (len(keys), sorted(keys.keys()))
        _sorted_names[id(bucket)] = cached
    names = cached[1]
    prefix = prefix or ""
    start = bisect.bisect_left(names, prefix)
    if continuation_token or start_after:
        limit = (
            self._pagination_tokens.get(continuation_token)
            if continuation_token
            else start_after
        )
        start = max(start, bisect.bisect_right(names, limit))
    page = []
    i = start
    while i < len(names) and len(page) <= max_keys:
        name = names[i]
        if not name.startswith(prefix):
            break
        key = keys.get(name)
        if key is not None and not isinstance(key, models.FakeDeleteMarker):
            page.append(key)
        i += 1
    return self._truncate_result(page, max_keys)


models.S3Backend.list_objects_v2 = _fast_list_objects_v2

_original_response = responses.S3Response.list_objects_v2


def _fast_list_objects_v2_response(self):
    q = self.querystring
    if (
        q.get("delimiter", [None])[0]
        or q.get("fetch-owner", [None])[0]
        or q.get("encoding-type", [None])[0] not in (None, "url")
        or q.get("continuation-token", [None])[0] == ""
    ):
        return _original_response(self)
    bucket = self.backend.get_bucket(self.bucket_name)
    continuation_token = q.get("continuation-token", [None])[0]
    prefix = self._get_querystring(self.request, self.uri).get("prefix", [None])[0]
    if isinstance(prefix, bytes):
        prefix = prefix.decode("utf-8")
    max_keys = int(q.get("max-keys", [1000])[0])
    start_after = q.get("start-after", [None])[0]
    encoding = q.get("encoding-type", [None])[0]
    keys, truncated, token = self.backend.list_objects_v2(
        bucket=bucket,
        prefix=prefix,
        delimiter=None,
        continuation_token=continuation_token,
        start_after=start_after,
        max_keys=max_keys,
    )
    out = [
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">',
        f"<Name>{escape(bucket.name)}</Name>",
        f"<Prefix>{escape(quote(prefix) if prefix and encoding else prefix or '')}</Prefix>",
        f"<MaxKeys>{max_keys}</MaxKeys><KeyCount>{len(keys)}</KeyCount>",
        f"<IsTruncated>{'true' if truncated else 'false'}</IsTruncated>",
    ]
    for k in keys:
        out.append(
            f"<Contents><Key>{escape(k.safe_name(encoding))}</Key>"
            f"<LastModified>{k.last_modified_ISO8601}</LastModified>"
            f"<ETag>{escape(k.etag)}</ETag><Size>{k.size}</Size>"
            f"<StorageClass>{k.storage_class}</StorageClass></Contents>"
        )
    if encoding:
        out.append(f"<EncodingType>{encoding}</EncodingType>")
    if token:
        out.append(f"<NextContinuationToken>{token}</NextContinuationToken>")
    if not continuation_token and start_after:
        out.append(f"<StartAfter>{escape(start_after)}</StartAfter>")
    out.append("</ListBucketResult>")
    headers = {"Content-Type": "application/xml"}
    headers.update(self.response_headers)
    return 200, headers, "".join(out)


responses.S3Response.list_objects_v2 = _fast_list_objects_v2_response

if __name__ == "__main__":
    main(["-H", "127.0.0.1", "-p", sys.argv[1]])
