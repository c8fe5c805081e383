"""The backfill library's errors.

::

    BackfillError          a job that cannot be planned or run (bad range, unknown provider)

Calls that fail inside a job are not raised: they are counted on the job and named in its
record, and the job goes on with the other pages.
"""

from __future__ import annotations


class BackfillError(Exception):
    """A backfill job that cannot be planned or run; the message says why, in one line."""
