"""Parsing an upload in a worker under a memory and a time limit (issue 27, F2): the same result as
``read_patents``, its errors with their own class, and a refusal (never the service's memory)
when the file needs more."""

from __future__ import annotations

import pandas as pd
import pytest

from benchmarks.upload_memory import HEADER, patent_row, write_csv, write_xlsx
from ipvalue.exceptions import ColumnError, InputFileError, PatentFrameError
from ipvalue.io import ReadLimits, read_patents
from ipvalue.io.bounded import read_patents_bounded


@pytest.mark.parametrize("kind", ["csv", "xlsx"])
def test_the_bounded_read_gives_what_read_patents_gives(tmp_path, kind):
    rows = [patent_row(i, duplicate=False) for i in range(30)] + [patent_row(0, duplicate=False), ["CN2", "CN", "plant", "2020-13-01", "x", "-1"]]
    path = tmp_path / f"upload.{kind}"
    if kind == "csv":
        pd.DataFrame(rows, columns=HEADER).to_csv(path, index=False)
    else:
        write_xlsx(path, HEADER, rows)
    bounded, direct = read_patents_bounded(path), read_patents(path)
    pd.testing.assert_frame_equal(bounded.valid, direct.valid)
    pd.testing.assert_frame_equal(bounded.problems, direct.problems.astype({"value": "str"}), check_dtype=False)
    pd.testing.assert_frame_equal(bounded.quarantine, direct.quarantine.astype({c: "str" for c in HEADER}), check_dtype=False)
    assert bounded.notes == direct.notes and len(bounded.quarantine) == 3


def test_errors_come_back_with_their_class_message_and_problems(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text("专利号,申请日\nCN1,2020-01-01\n", encoding="utf-8")
    with pytest.raises(ColumnError, match="missing required column"):
        read_patents_bounded(path)
    strict = write_csv(tmp_path / "dup.csv", 3, duplicate=True)
    with pytest.raises(PatentFrameError, match="3 of 3 rows break the PatentFrame contract") as caught:
        read_patents_bounded(strict, strict=True)
    assert caught.value.problems["problem"].eq("duplicated id").all()
    with pytest.raises(InputFileError, match="data rows.*above the 2 max rows"):
        read_patents_bounded(strict, limits=ReadLimits(max_rows=2))
    with pytest.raises(FileNotFoundError):
        read_patents_bounded(tmp_path / "none.csv")


def test_a_parse_that_needs_more_memory_than_allowed_is_refused_and_the_caller_lives(tmp_path):
    path = write_csv(tmp_path / "book.csv", 20_000, duplicate=False)
    with pytest.raises(InputFileError, match=r"book.csv needed more than 8 MB of memory to parse \(the limit of a parse\). Fix: export only"):
        read_patents_bounded(path, memory_bytes=8 * 2**20)
    assert len(read_patents_bounded(path).valid) == 20_000


def test_a_parse_that_takes_too_long_is_killed(tmp_path):
    path = write_csv(tmp_path / "book.csv", 20_000, duplicate=False)
    with pytest.raises(InputFileError, match=r"book.csv took more than 0 s to parse"):
        read_patents_bounded(path, timeout_s=0.01)
