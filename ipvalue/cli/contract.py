"""``ipvalue contract``: the PatentFrame columns, types, units and allowed values."""

from __future__ import annotations

from ipvalue.cli.exitcodes import EXIT_OK


def add_parser(sub) -> None:
    p = sub.add_parser("contract", help="print the PatentFrame input contract (columns, types, units)")
    p.set_defaults(func=run)


def run(args) -> int:
    from ipvalue.frame import contract_table

    print(contract_table().to_string(index=False))
    return EXIT_OK
