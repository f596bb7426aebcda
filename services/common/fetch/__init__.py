"""One safe fetcher for every service that downloads a URL it was given (storage's Fetch, the
gateway's image URLs, the providers' result and input images).

- `policy`: which URLs may be fetched (http(s), no internal address unless allow-listed, the
  connection pinned to the checked address).
- `download`: the bounded download (every redirect hop checked, a timeout, a byte cap while
  streaming, the bytes sniffed).
- `sniff`: what the bytes really are (Pillow).
- `rules`: what each service configures, and the settings type for its allow-list.
- `errors`: `FetchFailed`, with the reason each caller maps to its own answer.
"""

from services.common.fetch.download import Downloaded, Downloader
from services.common.fetch.errors import FetchFailed
from services.common.fetch.policy import IPNetwork, Target, UrlPolicy, shown
from services.common.fetch.rules import AllowNetworks, FetchRules
from services.common.fetch.sniff import IMAGE_TYPES, sniff

__all__ = [
    "IMAGE_TYPES",
    "AllowNetworks",
    "Downloaded",
    "Downloader",
    "FetchFailed",
    "FetchRules",
    "IPNetwork",
    "Target",
    "UrlPolicy",
    "shown",
    "sniff",
]
