"""Settings of the API benchmark's server (bench/api.py): the product's settings, with bench/api_urls.py as urlconf.

Only the benchmark uses this module; it adds the plain comparison view and changes nothing else. The
per-token throttle and the rate-limit key prefix come from the environment bench/api.py sets.
"""

from qmailing.settings import *  # noqa: F401,F403

ROOT_URLCONF = "bench.api_urls"
