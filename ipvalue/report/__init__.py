"""The 内部评估报告 as data (:mod:`ipvalue.report.sections`: addressable sections of paragraphs,
tables and charts), its renderings (:mod:`ipvalue.report.render`: HTML, PDF, JSON) and the printing
of a page to PDF (:mod:`ipvalue.report.printing`: headless Chromium, else WeasyPrint)."""

from ipvalue.report.printing import pdf_engine, pdf_unavailable, prints_pdf, render_pdf
from ipvalue.report.render import format_cell, render_html, write_reports
from ipvalue.report.sections import Chart, Column, Report, Section, Table

__all__ = ["Chart", "Column", "Report", "Section", "Table", "format_cell", "pdf_engine", "pdf_unavailable", "prints_pdf", "render_html", "render_pdf",
           "write_reports"]
