#!/usr/bin/env python3
"""Fidelity check of keel-sim against the official Genesys Cloud Python SDK.

The SDK (PyPI ``PureCloudPlatformClientV2``) is a client nobody on this project wrote. It must
obtain a client-credentials token from the simulator (through the SDK's gateway setting, which
points both its login host and its API host at the simulator) and page the conversation
details query to the end with its own models, once without filters and once with a
``mediaType`` segment filter. Exit status 0 means every expectation held.

Usage: sdk_fidelity.py --base-url http://127.0.0.1:PORT --client-id ID --client-secret SECRET \
       --interval START/END --expected N [--expected-voice M] [--page-size 100]
The secret may also come from the environment variable KEEL_SIM_CLIENT_SECRET.
"""

import argparse
import os
import sys
from urllib.parse import urlparse

import PureCloudPlatformClientV2 as genesys


def page_through(api, interval, page_size, segment_filters=None):
    """Pages the details query to the end; returns (conversation ids, last totalHits, pages)."""
    ids = []
    page = 1
    total = None
    while True:
        query = genesys.ConversationQuery()
        query.interval = interval
        query.order = "asc"
        query.order_by = "conversationStart"
        paging = genesys.PagingSpec()
        paging.page_size = page_size
        paging.page_number = page
        query.paging = paging
        if segment_filters is not None:
            query.segment_filters = segment_filters
        response = api.post_analytics_conversations_details_query(query)
        total = response.total_hits
        conversations = response.conversations or []
        for conversation in conversations:
            assert conversation.conversation_id, "conversationId missing"
            assert conversation.conversation_start is not None, "conversationStart missing"
            for participant in conversation.participants or []:
                for session in participant.sessions or []:
                    assert session.media_type in ("voice", "chat", "email", "callback", "message"), session.media_type
            ids.append(conversation.conversation_id)
        if not conversations or page * page_size >= total:
            return ids, total, page
        page += 1


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base-url", required=True)
    parser.add_argument("--client-id", required=True)
    parser.add_argument("--client-secret", default=os.environ.get("KEEL_SIM_CLIENT_SECRET"))
    parser.add_argument("--interval", required=True)
    parser.add_argument("--expected", type=int, required=True)
    parser.add_argument("--expected-voice", type=int)
    parser.add_argument("--page-size", type=int, default=100)
    args = parser.parse_args()
    if not args.client_secret:
        parser.error("--client-secret or KEEL_SIM_CLIENT_SECRET is required")

    url = urlparse(args.base_url)
    genesys.configuration.host = args.base_url
    api_client = genesys.ApiClient(host=args.base_url)
    # The gateway setting is how the SDK reaches a non-Genesys host: it builds both the login
    # URL (…/oauth/token) and the API URLs from it.
    api_client.set_gateway(url.hostname, url.scheme, url.port, "", "")
    api_client.get_client_credentials_token(args.client_id, args.client_secret)
    assert api_client.access_token, "the SDK did not store an access token"

    api = genesys.AnalyticsApi(api_client)
    ids, total, pages = page_through(api, args.interval, args.page_size)
    assert total == args.expected, f"totalHits {total} != expected {args.expected}"
    assert len(ids) == args.expected, f"paged {len(ids)} conversations, expected {args.expected}"
    assert len(set(ids)) == len(ids), "duplicate conversations"
    print(f"sdk fidelity: {len(ids)} conversations in {pages} pages")

    if args.expected_voice is not None:
        predicate = genesys.SegmentDetailQueryPredicate()
        predicate.type = "dimension"
        predicate.dimension = "mediaType"
        predicate.operator = "matches"
        predicate.value = "voice"
        segment_filter = genesys.SegmentDetailQueryFilter()
        segment_filter.type = "and"
        segment_filter.predicates = [predicate]
        voice, vtotal, vpages = page_through(api, args.interval, args.page_size, [segment_filter])
        assert vtotal == args.expected_voice, f"voice totalHits {vtotal} != {args.expected_voice}"
        assert len(voice) == args.expected_voice, f"paged {len(voice)} voice conversations"
        assert set(voice) <= set(ids), "filtered conversations must be a subset"
        print(f"sdk fidelity: {len(voice)} voice conversations in {vpages} pages")
    return 0


if __name__ == "__main__":
    sys.exit(main())
