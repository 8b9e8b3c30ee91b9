"""Start moto's server for the tests, with one patch for CloudFront fidelity.

moto reports a finished invalidation as "COMPLETED"; CloudFront and the SDK waiter say
"Completed". This patch (tests only, never the product) reports CloudFront's spelling, and,
when MOTO_INVALIDATION_IN_PROGRESS_READS=N is set, "InProgress" for the first N reads of
each invalidation, so that waiting can be exercised.

moto also creates a new invalidation for a repeated CallerReference; CloudFront returns the
existing one when the reference and the paths are the same. The second patch emulates that.

Usage: python test/moto_server.py PORT [moto_server options, e.g. --ssl-cert CERT --ssl-key KEY]
"""

import os
import sys

from moto.cloudfront import models
from moto.server import main

IN_PROGRESS_READS = int(os.environ.get("MOTO_INVALIDATION_IN_PROGRESS_READS", "0"))


def _status(self):
    reads = self.__dict__.get("_status_reads", 0)
    self.__dict__["_status_reads"] = reads + 1
    return "InProgress" if reads < IN_PROGRESS_READS else "Completed"


def _ignore(self, value):
    pass


models.Invalidation.status = property(_status, _ignore)

_create_invalidation = models.CloudFrontBackend.create_invalidation


def _idempotent_create(self, dist_id, paths, caller_ref):
    for existing in self.invalidations.get(dist_id, []):
        if existing.caller_ref == caller_ref and list(existing.paths) == list(paths):
            return existing
    return _create_invalidation(self, dist_id, paths, caller_ref)


models.CloudFrontBackend.create_invalidation = _idempotent_create

if __name__ == "__main__":
    # Further arguments go to moto, e.g. `--ssl-cert CERT --ssl-key KEY` for HTTPS (test/image.sh).
    main(["-H", "127.0.0.1", "-p", sys.argv[1], *sys.argv[2:]])
