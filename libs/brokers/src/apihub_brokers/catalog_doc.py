"""Write ``docs/trs.md``, the table of the built-in TR catalog:
``uv run python -m apihub_brokers.catalog_doc > docs/trs.md``.

A test regenerates it and fails when the committed file differs, so it cannot drift from
``trs.toml``.
"""

from __future__ import annotations

import sys

from apihub_brokers import catalog_markdown

REGENERATE = "uv run python -m apihub_brokers.catalog_doc > docs/trs.md"

_INTRO = f"""\
# TRs

<!-- Generated from libs/brokers/src/apihub_brokers/trs.toml: do not edit by hand.
     Regenerate with `{REGENERATE}`. -->

The broker transactions apihub knows out of the box: KIS `tr_id`s and Kiwoom `api-id`s. The
definitions are data, in `libs/brokers/src/apihub_brokers/trs.toml`; add your own, or replace
one of these, with `[[catalog.tr]]` tables in `apihub.toml`
([configuration.md](configuration.md#adding-a-tr)).

- **Virtual twin**: the id sent on a virtual (모의투자) account; a call may name either id.
- **Kind**: `order` TRs are sent at most once and never retried once they may have reached the
  broker; `query` TRs may be retried.
- **Paging**: `none`; `tr_cont` (KIS: the `tr_cont` header and body cursors such as
  `CTX_AREA_FK100`/`CTX_AREA_NK100`); `cont_key` (Kiwoom: `cont-yn`/`next-key` headers);
  `date_window`/`hour_window` (KIS charts: move `FID_INPUT_DATE_2`/`FID_INPUT_HOUR_1` back).

Regenerate this file after changing the data: `{REGENERATE}`.

"""


def document() -> str:
    """The text of ``docs/trs.md``."""
    return _INTRO + catalog_markdown()


def main() -> None:
    """Print :func:`document` (UTF-8, whatever the locale)."""
    sys.stdout.buffer.write(document().encode("utf-8"))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
