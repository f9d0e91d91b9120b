#!/usr/bin/env python3
"""Generates the botocore-signed requests in this folder.

Run once, by hand, from this folder:

    python3 generate.py

It signs fixed requests with botocore's own signers (SigV4Auth for the
Authorization header, SigV4QueryAuth and S3SigV4QueryAuth for presigned
URLs) at a fixed time, and writes for each case NAME:

    NAME.txt   the request as it goes on the wire (request line, headers, body)
    NAME.json  what a verifier needs: credentials, region, service, time, expiry
    NAME.creq  botocore's canonical request (header form only)

The Go tests read these files; they need no Python.
"""
import datetime
import json
import sys
from unittest import mock
from urllib.parse import urlsplit

import botocore
import botocore.auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

NOW = datetime.datetime(2024, 3, 1, 12, 30, 45)
REGION = "us-west-2"
SERVICE = "aps"
AKID = "AKIDBOTOCOREEXAMPLE"
SECRET = "bOtOcOrE/SeCrEt+KeY/ForTestsOnly0123456789"
TOKEN = "FwoGZXIvYXdzEXAMPLE//SESSION+TOKEN/for/botocore/tests=="
HOST = "aps-workspaces.us-west-2.amazonaws.com"
BASE = "https://" + HOST
WS = "/workspaces/ws-0123abcd-4567-89ef-0123-456789abcdef"


def write(name, prepared, ctx, creq=None):
    parts = urlsplit(prepared.url)
    target = parts.path or "/"
    if parts.query:
        target += "?" + parts.query
    lines = [f"{prepared.method} {target} HTTP/1.1", f"Host: {parts.netloc}"]
    for k, v in prepared.headers.items():
        if k.lower() == "host":
            continue
        lines.append(f"{k}: {v}")
    body = prepared.body or b""
    if isinstance(body, str):
        body = body.encode()
    if body and "Content-Length" not in prepared.headers:
        lines.append(f"Content-Length: {len(body)}")
    raw = ("\r\n".join(lines) + "\r\n\r\n").encode() + body
    with open(name + ".txt", "wb") as f:
        f.write(raw)
    ctx = dict(ctx)
    ctx.update(
        access_key_id=AKID,
        secret_access_key=SECRET,
        region=REGION,
        service=SERVICE,
        timestamp=NOW.strftime("%Y-%m-%dT%H:%M:%SZ"),
        botocore_version=botocore.__version__,
    )
    with open(name + ".json", "w") as f:
        json.dump(ctx, f, indent=2, sort_keys=True)
        f.write("\n")
    if creq is not None:
        with open(name + ".creq", "w") as f:
            f.write(creq)


def sign_header(name, method, url, headers=None, data=None, params=None, token=None, cls=botocore.auth.SigV4Auth):
    creds = Credentials(AKID, SECRET, token)
    req = AWSRequest(method=method, url=url, headers=headers or {}, data=data, params=params or {})
    signer = cls(creds, SERVICE, REGION)
    # Record the canonical request botocore builds while signing (computing
    # it afterwards would include the Authorization header just added).
    captured = []
    build = signer.canonical_request

    def capture(request):
        captured.append(build(request))
        return captured[-1]

    signer.canonical_request = capture
    signer.add_auth(req)
    creq = captured[0]
    write(name, req.prepare(), {"presigned": False, "session_token": token or ""}, creq)


def presign(name, cls, method, url, params=None, token=None, expires=300):
    creds = Credentials(AKID, SECRET, token)
    req = AWSRequest(method=method, url=url, params=params or {})
    cls(creds, SERVICE, REGION, expires=expires).add_auth(req)
    write(name, req.prepare(), {"presigned": True, "expires": expires, "session_token": token or ""})


def main():
    with mock.patch.object(botocore.auth, "get_current_datetime", return_value=NOW):
        body = b"\x0a\x1f\x0a\x0b\x0a\x08__name__\x12\x02up" + bytes(range(0, 40))
        sign_header(
            "header-post-remote-write",
            "POST",
            BASE + WS + "/api/v1/remote_write",
            headers={
                "Content-Type": "application/x-protobuf",
                "Content-Encoding": "snappy",
                "X-Prometheus-Remote-Write-Version": "0.1.0",
            },
            data=body,
        )
        sign_header(
            "header-get-query",
            "GET",
            BASE + WS + "/api/v1/query",
            params={"query": 'sum by (job) (rate(http_requests_total{code=~"5.."}[5m]))', "time": "1709296245.5"},
        )
        sign_header(
            "header-get-session-token",
            "GET",
            BASE + WS + "/api/v1/labels",
            params={"match[]": "up", "start": "2024-03-01T00:00:00Z"},
            token=TOKEN,
        )
        # A path with a space, a percent-encoded slash, '..' and '//': botocore
        # normalizes it and encodes the already-encoded path once more.
        sign_header(
            "header-get-odd-path",
            "GET",
            BASE + "/workspaces/ws%201/a//b/./c/../d%2Fe/caf%C3%A9",
        )
        # With a Date header botocore dates the request by it alone, in the
        # RFC 2822 form "Fri, 01 Mar 2024 12:30:45 -0000", and sends no X-Amz-Date.
        sign_header(
            "header-get-date-header",
            "GET",
            BASE + WS + "/api/v1/labels",
            headers={"Date": "placeholder"},
        )
        # botocore's S3 header signer sends x-amz-content-sha256 (the body's
        # hash over plain http); the path uses only unreserved characters,
        # where S3 and non-S3 canonical URIs agree.
        sign_header(
            "header-put-content-sha256",
            "PUT",
            "http://" + HOST + WS + "/rulegroupsnamespaces/example",
            headers={"Content-Type": "application/yaml"},
            data=b"groups:\n  - name: example\n    rules: []\n",
            cls=botocore.auth.S3SigV4Auth,
        )
        presign(
            "presigned-get-query",
            botocore.auth.SigV4QueryAuth,
            "GET",
            BASE + WS + "/api/v1/query",
            params={"query": "up == 1", "time": "1709296245"},
        )
        presign(
            "presigned-get-session-token",
            botocore.auth.SigV4QueryAuth,
            "GET",
            BASE + WS + "/api/v1/series",
            params={"match[]": 'up{job="node"}'},
            token=TOKEN,
            expires=900,
        )
        # botocore's S3 presigner signs UNSIGNED-PAYLOAD; the path uses only
        # unreserved characters, where S3 and non-S3 canonical URIs agree.
        presign(
            "presigned-unsigned-payload",
            botocore.auth.S3SigV4QueryAuth,
            "GET",
            BASE + WS + "/api/v1/query",
            params={"query": "up"},
            expires=3600,
        )


if __name__ == "__main__":
    sys.exit(main())
