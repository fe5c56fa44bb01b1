"""Diagnosis: what a receiver pays to read the request id and sender from a resource URL.

    .venv/bin/python bench/diag_url_ids.py [--urls N] [--rounds 5]

The callback endpoint memoises each resource URL's ids (``_webhook.py:cached_url_ids``): every
recipient of a request has its callbacks posted with the same URL. A request to one recipient
(an OTP, say) brings its URL once or twice, so most of its callbacks pay the memo's miss. This
prints the µs per URL seen for the first time (``N`` URLs in a fresh memo, the best of the
rounds) and per URL seen again. Run it with ``PYTHONPATH=OTHER`` (a ``git archive`` of another
commit's ``opensms_async``) to measure that one: the same process measures one package.
"""

from __future__ import annotations

import argparse
import time

import opensms_async
from opensms_async._webhook import cached_url_ids

URL = (
    "https://api.bics.example/sms/v1/outbound/tel%3A%2B3212345/requests/"
    "{:08d}-7c1e-4d7e-9a0b/deliveryInfos"
)


def _count(text: str) -> int:
    """A whole number of at least 1 (argparse's ``type=``: anything else, one line of usage)."""
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"a whole number of at least 1, not {text!r}")
    return int(text)


def main() -> None:
    """Print the µs per first sighting and per repeat of a resource URL."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--urls", type=_count, default=40000, help="new URLs per round")
    parser.add_argument("--rounds", type=_count, default=5)
    args = parser.parse_args()
    urls = [URL.format(i) for i in range(args.urls * args.rounds)]
    misses = []
    for r in range(args.rounds):
        url_ids = cached_url_ids()
        chunk = urls[r * args.urls : (r + 1) * args.urls]
        started = time.perf_counter()
        for url in chunk:
            url_ids(url)
        misses.append((time.perf_counter() - started) / len(chunk) * 1e6)
    url_ids = cached_url_ids()
    url_ids(urls[0])
    started = time.perf_counter()
    for _ in range(args.urls):
        url_ids(urls[0])
    hit = (time.perf_counter() - started) / args.urls * 1e6
    print(f"package {opensms_async.__file__}")
    print(f"first sighting {min(misses):5.2f} µs per URL (best of {args.rounds} rounds)")
    print(f"seen again     {hit:5.2f} µs per URL")


if __name__ == "__main__":
    main()
