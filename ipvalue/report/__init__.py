"""The 内部评估报告 as data (:mod:`ipvalue.report.sections`: addressable sections of paragraphs,
tables and charts) and its renderings (:mod:`ipvalue.report.render`: HTML, PDF, JSON)."""

from ipvalue.report.render import format_cell, pdf_unavailable, prints_pdf, render_html, render_pdf, write_reports
from ipvalue.report.sections import Chart, Column, Report, Section, Table

__all__ = ["Chart", "Column", "Report", "Section", "Table", "format_cell", "pdf_unavailable", "prints_pdf", "render_html", "render_pdf", "write_reports"]
