#!/usr/bin/env python3
"""The official Genesys Cloud Python SDK through keel's axum gateway example.

The SDK (PyPI ``PureCloudPlatformClientV2``) is pointed at the gateway with its gateway
setting and given a placeholder access token: it holds no credentials at all. The gateway drops
the placeholder, attaches its own token (refreshing it when the API revokes it) and waits out
429s, none of which the SDK does for itself on a POST. The SDK pages the conversation details
query to the end; exit status 0 means it got every conversation exactly once.

With ``--client-id`` (secret in the environment variable KEEL_SIM_CLIENT_SECRET) the SDK
instead logs in itself, the usual way, and talks to the URL directly: the baseline the gateway
is compared with.

Usage: gateway_sdk.py --gateway-url http://127.0.0.1:PORT --interval START/END --expected N
       [--page-size 100] [--client-id ID]
"""

import argparse
import os
import sys
from urllib.parse import urlparse

import PureCloudPlatformClientV2 as genesys

PLACEHOLDER_TOKEN = "placeholder-the-gateway-holds-the-real-token"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gateway-url", required=True)
    parser.add_argument("--interval", required=True)
    parser.add_argument("--expected", type=int, required=True)
    parser.add_argument("--page-size", type=int, default=100)
    parser.add_argument("--client-id")
    args = parser.parse_args()

    url = urlparse(args.gateway_url)
    api_client = genesys.ApiClient()
    api_client.set_gateway(url.hostname, url.scheme, url.port, "", "")
    if args.client_id:
        api_client.get_client_credentials_token(args.client_id, os.environ["KEEL_SIM_CLIENT_SECRET"])
    else:
        api_client.access_token = PLACEHOLDER_TOKEN
    api = genesys.AnalyticsApi(api_client)

    ids = []
    page = 1
    while True:
        query = genesys.ConversationQuery()
        query.interval = args.interval
        query.order = "asc"
        query.order_by = "conversationStart"
        paging = genesys.PagingSpec()
        paging.page_size = args.page_size
        paging.page_number = page
        query.paging = paging
        response = api.post_analytics_conversations_details_query(query)
        conversations = response.conversations or []
        ids.extend(c.conversation_id for c in conversations)
        if not conversations or page * args.page_size >= response.total_hits:
            break
        page += 1

    assert response.total_hits == args.expected, f"totalHits {response.total_hits} != {args.expected}"
    assert len(ids) == args.expected, f"paged {len(ids)} conversations, expected {args.expected}"
    assert len(set(ids)) == len(ids), "duplicate conversations"
    print(f"gateway sdk: {len(ids)} conversations in {page} pages")
    return 0


if __name__ == "__main__":
    sys.exit(main())
