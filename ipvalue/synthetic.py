"""A synthetic Chinese patent-pledge portfolio for demos and tests. **SYNTHETIC DATA.**

Nothing here describes a real patent, company or loan. Identifiers start with ``SYN-`` and both
tables carry ``data_origin = "synthetic"``. Distributions are chosen to look like a Chinese
pledge book:

* patent types: 45 % invention, 45 % utility model, 10 % design (utility models are a large share
  of pledged Chinese patents);
* claim counts: inventions follow the OECD EPO cohort quantiles of ``claims`` (filing year 2010,
  median over the 35 fields: p10 6, p25 8, p50 11, p75 15, p90 17, p99 28), utility models about
  two thirds of that, designs 1;
* backward citations and family sizes follow the same OECD table's medians (``bwd_cits`` p50 5;
  ``family_size`` p50 3 for EPO filings), with 80 % of these domestic patents in a family of one;
* forward citations grow with age and a latent quality; their dates lie between publication and
  the portfolio's data date;
* ``appraised_value_rmb`` is a synthetic label for the value regressor, shaped like an income-
  approach appraisal: the product revenue shared equally among the package's patents × 2 % × the
  annuity factor of the income period (remaining
  life capped at 10 years, 13 %), times factors for claims, citations, family, patent type and a
  latent quality, with log-normal noise; monotone in each input.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

DATA_DATE = pd.Timestamp("2026-06-30")

#: Quantile points (probability, value) used as piecewise-linear inverse CDFs.
_CLAIMS_Q = ([0.0, 0.01, 0.10, 0.25, 0.50, 0.75, 0.90, 0.99, 1.0], [1, 2, 6, 8, 11, 15, 17, 28, 60])
_BWD_Q = ([0.0, 0.10, 0.25, 0.50, 0.75, 0.90, 0.99, 1.0], [0, 1, 3, 5, 8, 11, 25, 60])
_FAMILY_Q = ([0.0, 0.25, 0.50, 0.75, 0.90, 0.99, 1.0], [2, 2, 3, 6, 8, 16, 30])

#: Common IPC main groups of Chinese pledged patents, with a sector tag for revenue levels.
_IPC_MAIN = [
    "G06F 16/00", "G06F 3/00", "H04L 29/06", "H04W 72/04", "H01M 10/05", "H02J 7/00",
    "H01L 21/00", "G01N 21/00", "G01B 11/00", "A61B 5/00", "A61K 31/00", "C08L 23/00",
    "C07D 401/00", "C12N 15/00", "B01D 53/00", "B23K 26/00", "B65G 47/00", "F16H 57/00",
    "B60L 53/00", "E04B 1/00", "A01G 9/00", "A47J 27/00",
]
_OFFICES = np.array(["US", "EP", "JP", "KR", "WO"])
_CITIES = np.array(["北京", "上海", "苏州", "杭州", "广州", "深圳", "成都", "宁波"])
_TRADES = np.array(["智能装备", "新材料", "生物医药", "电子信息", "新能源", "精密仪器"])


@dataclass
class DemoPortfolio:
    """The synthetic pledge book.

    Attributes
    ----------
    patents : pandas.DataFrame
        PatentFrame columns plus ``borrower``, ``loan_id``, ``appraised_value_rmb`` (synthetic
        label) and ``data_origin``.
    loans : pandas.DataFrame
        One row per loan application: ``loan_id``, ``borrower``, ``requested_amount_rmb``,
        ``term_years``, ``purpose``, ``valuation_date``, ``data_origin``.
    """

    patents: pd.DataFrame
    loans: pd.DataFrame


def _quantile_draw(rng: np.random.Generator, q, size: int) -> np.ndarray:
    probs, values = q
    return np.interp(rng.random(size), probs, values)


def make_demo_portfolio(n: int = 500, seed: int = 0, *, data_date: str | pd.Timestamp = DATA_DATE) -> DemoPortfolio:
    """Generate a synthetic pledge portfolio of ``n`` patents (**synthetic**, see module notes).

    Parameters
    ----------
    n : int, default=500
        Number of patents; loans hold 1-5 patents each.
    seed : int, default=0
        Seed: the same ``(n, seed, data_date)`` gives the same tables.
    data_date : date-like, default=2026-06-30
        The date the data describe (statuses, citations up to this date).

    Returns
    -------
    DemoPortfolio

    Examples
    --------
    >>> demo = make_demo_portfolio(20, seed=1)
    >>> demo.patents["data_origin"].unique().tolist()
    ['synthetic']
    """
    if not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"The 'n' of make_demo_portfolio must be a positive integer. Got {n!r}.")
    rng = np.random.default_rng(seed)
    data_date = pd.Timestamp(data_date)

    # Loans and borrowers: patents are handed out to loans of 1-5 patents.
    loan_sizes = rng.integers(1, 6, size=n)
    loan_of_patent = np.repeat(np.arange(n), loan_sizes)[:n]
    n_loans = int(loan_of_patent.max()) + 1
    borrower_names = np.char.add(
        np.char.add("合成示例", _CITIES[rng.integers(0, len(_CITIES), n_loans)]),
        np.char.add(_TRADES[rng.integers(0, len(_TRADES), n_loans)], [f"科技有限公司{i:04d}" for i in range(n_loans)]),
    )
    loan_ids = np.array([f"SYN-LOAN-{i:05d}" for i in range(n_loans)])

    kind = rng.choice(["invention", "utility_model", "design"], p=[0.45, 0.45, 0.10], size=n)
    inv, um, des = kind == "invention", kind == "utility_model", kind == "design"
    quality = rng.normal(0.0, 1.0, size=n)  # latent, drives citations and value

    filing = data_date - pd.to_timedelta(rng.uniform(0.8, 14.0, size=n) * 365.25, unit="D")
    filing = filing.where(~um, data_date - pd.to_timedelta(rng.uniform(0.8, 9.5, size=n) * 365.25, unit="D"))
    grant_lag_years = np.where(inv, rng.gamma(6.0, 0.4, n), rng.gamma(4.0, 0.15, n))
    grant = filing + pd.to_timedelta(grant_lag_years * 365.25, unit="D")
    pending = grant > data_date
    grant = grant.where(~pending)
    publication = np.where(inv, filing + pd.Timedelta(days=548), grant)
    publication = pd.DatetimeIndex(publication)
    publication = publication.where(publication <= data_date, pd.NaT)
    priority = filing - pd.to_timedelta(np.where(rng.random(n) < 0.2, rng.uniform(0, 365, n), 0), unit="D")

    term_years = np.where(inv, 20, np.where(um, 10, np.where(filing >= pd.Timestamp("2021-06-01"), 15, 10)))
    expiry = filing + pd.to_timedelta(term_years * 365.25, unit="D")
    status = np.where(pending, "pending", "in_force").astype(object)
    roll = rng.random(n)
    status[(roll < 0.05) & ~pending] = "lapsed"
    status[(roll > 0.99) & ~pending] = "invalidated"
    status[np.asarray(expiry <= data_date)] = "expired"
    # Fees are paid to the next filing anniversary; 4 % of live patents are behind.
    years_paid = np.ceil((data_date - filing).days / 365.25)
    behind = (rng.random(n) < 0.04) & (status == "in_force")
    fees_paid_until = filing + pd.to_timedelta((years_paid - behind * 1.5) * 365.25, unit="D")

    claims = np.where(inv, np.round(_quantile_draw(rng, _CLAIMS_Q, n)), np.where(um, np.round(_quantile_draw(rng, _CLAIMS_Q, n) * 0.66), 1))
    claims = np.maximum(claims, 1)
    independent = np.minimum(claims, np.where(des, 1, 1 + rng.binomial(2, 0.3, n)))
    in_family = (rng.random(n) < 0.2) & ~des
    family_size = np.where(in_family, np.round(_quantile_draw(rng, _FAMILY_Q, n)), 1)
    n_foreign = np.minimum(family_size - 1, len(_OFFICES)).astype(int)
    offices = ["CN" + "".join(";" + o for o in rng.permutation(_OFFICES)[:k]) for k in n_foreign]

    age = np.asarray((data_date - publication.fillna(data_date)).days / 365.25)
    fwd_mean = np.exp(0.6 * quality) * age * np.where(inv, 0.6, 0.25)
    fwd = rng.poisson(fwd_mean)
    pub_ns = publication.fillna(data_date).asi8
    # all citations in one draw (the same random stream as one draw per patent), sorted within each patent
    citing = np.repeat(np.arange(n), fwd)
    cited_at = rng.uniform(np.repeat(pub_ns, fwd), data_date.value).astype("datetime64[ns]").astype("datetime64[D]")
    order = np.lexsort((cited_at, citing))
    joined = pd.Series(np.datetime_as_string(cited_at[order])).groupby(citing[order]).agg(";".join)
    citation_dates = joined.reindex(range(n)).astype(object).where(lambda s: s.notna(), None).tolist()
    self_cites = rng.binomial(fwd, 0.15)

    ipc_idx = rng.integers(0, len(_IPC_MAIN), n)
    ipc_main = np.array(_IPC_MAIN)[ipc_idx]
    extra = [";".join(c for c in rng.choice(_IPC_MAIN, size=k, replace=False) if c != m) for m, k in zip(ipc_main, rng.integers(0, 3, n))]
    ipc_codes = [m + (";" + e if e else "") for m, e in zip(ipc_main, extra)]

    borrower = borrower_names[loan_of_patent]
    co_owner = rng.random(n) < 0.08
    applicants = np.where(co_owner, np.char.add(borrower, ";合成示例理工大学"), borrower)

    revenue_by_loan = np.exp(rng.normal(np.log(2.0e7), 0.8, n_loans))
    growth_by_loan = np.clip(rng.normal(0.05, 0.04, n_loans), -0.1, 0.3)

    remaining = np.clip(np.asarray((expiry - data_date).days / 365.25), 0, None) * (status == "in_force")
    # Appraisers use the income approach, so the label carries its annuity factor over the income
    # period (at most 10 years, 13 % discount): concave in remaining life, not log-linear.
    period = np.minimum(remaining, 10.0)
    annuity = (1 - 1.13 ** -period) / 0.13
    package_size = np.bincount(loan_of_patent)[loan_of_patent]
    log_value = (
        np.log(revenue_by_loan[loan_of_patent] / package_size)
        + np.log(0.02)
        + np.log(np.maximum(annuity, 1e-3))
        + 0.15 * np.log1p(claims)
        + 0.20 * np.log1p(fwd)
        + 0.12 * np.log(family_size)
        + np.where(inv, 0.45, np.where(um, 0.0, -0.3))
        + 0.25 * quality
        + rng.normal(0, 0.30, n)
    )
    appraised = np.where(status == "in_force", np.round(np.exp(log_value), -3), np.nan)

    patents = pd.DataFrame(
        {
            "patent_id": [f"SYN-CN-{i:07d}" for i in range(n)],
            "application_number": [f"SYN{2000000 + i}" for i in range(n)],
            "jurisdiction": "CN",
            "patent_type": kind,
            "filing_date": filing.normalize(),
            "priority_date": priority.normalize(),
            "publication_date": publication.normalize(),
            "grant_date": grant.normalize(),
            "legal_status": status.astype(str),
            "fees_paid_until": fees_paid_until.normalize(),
            "claims_total": claims.astype(float),
            "claims_independent": independent.astype(float),
            "family_size": family_size.astype(float),
            "family_offices": offices,
            "forward_citations": fwd.astype(float),
            "forward_citation_dates": citation_dates,
            "self_citations": self_cites.astype(float),
            "backward_citations": np.round(_quantile_draw(rng, _BWD_Q, n)),
            "npl_citations": rng.poisson(np.where(inv, 1.2, 0.2)).astype(float),
            "ipc_main": ipc_main,
            "ipc_codes": ipc_codes,
            "applicants": applicants,
            "inventor_count": (1 + rng.poisson(2.5, n)).astype(float),
            "pledge_count": rng.binomial(1, 0.1, n).astype(float),
            "licence_count": rng.poisson(0.15, n).astype(float),
            "transfer_count": rng.poisson(0.2, n).astype(float),
            "litigation_count": rng.binomial(1, 0.03, n).astype(float),
            "invalidation_count": rng.binomial(1, 0.02, n).astype(float),
            "package_id": loan_ids[loan_of_patent],
            "revenue_base_rmb": np.round(revenue_by_loan[loan_of_patent], -3),
            "revenue_growth": np.round(growth_by_loan[loan_of_patent], 3),
            "borrower": borrower,
            "loan_id": loan_ids[loan_of_patent],
            "appraised_value_rmb": appraised,
            "data_origin": "synthetic",
        }
    )
    loans = pd.DataFrame(
        {
            "loan_id": loan_ids,
            "borrower": borrower_names,
            "requested_amount_rmb": np.round(np.exp(rng.normal(np.log(3.0e6), 0.7, n_loans)), -4),
            "term_years": rng.choice([1, 2, 3], p=[0.5, 0.3, 0.2], size=n_loans).astype(float),
            "purpose": "working capital (synthetic)",
            "valuation_date": data_date.normalize(),
            "data_origin": "synthetic",
        }
    )
    patents.attrs["data_origin"] = loans.attrs["data_origin"] = "synthetic"
    return DemoPortfolio(patents=patents, loans=loans)


#: Headers of a CNIPA legal-status export, as :func:`ipvalue.io.read_register` reads them.
REGISTER_HEADERS = ("申请号", "法律状态公告日", "法律状态", "法律状态信息", "事件代码")


@dataclass
class RegisterHistory:
    """A synthetic patent list, its register export and the simulated truth (see :func:`make_register_history`)."""

    patents: pd.DataFrame
    events: pd.DataFrame
    lapse_anniversary: pd.Series  # the filing anniversary whose unpaid fee ended the right (announced by the export date); NaN otherwise


def make_register_history(n: int = 1500, seed: int = 0, *, exported_on: str | pd.Timestamp = "2025-12-31") -> RegisterHistory:
    """A **synthetic** bank book of granted CN patents and its CNIPA legal-status export, for the
    training path of ``ipvalue train`` on a register export (experiments/renewal-cnipa-synthetic.yaml).

    Every patent pays its 年费 at the filing anniversaries of the ``cn-annual`` schedule
    (``fee-schedules.yaml``) that fall due after its grant, before its statutory expiry and by
    ``exported_on``; it lapses at anniversary ``a`` with probability
    ``sigmoid(logit(h_table(type, a)) + u_owner − 0.05 (claims − 8))``: the CN life table's
    placeholder hazards moved by a latent owner propensity (normal, sd 0.9, shared by the owner's
    patents: the owner-history signal) and the claim count. A lapse is announced as CF01 8-16
    months after the unpaid due date (85 % of the announcements state the 终止日期), 8 % of lapses
    are restored (RR01) and the patent pays on; pledges (PE01 / PC01), licences (EE01) and
    transfers (TR01) are added for the owner-history shares. Events announced after
    ``exported_on`` are not in the export.

    Returns
    -------
    RegisterHistory
        ``patents`` (PatentFrame columns; ``application_number`` joins the export; plus
        ``data_origin``), ``events`` (the export: :data:`REGISTER_HEADERS`, one row per event,
        sorted by number and date) and ``lapse_anniversary`` (the truth the labels are read back
        against in the tests).
    """
    from scipy.special import expit, logit

    from ipvalue.features.builders import add_years
    from ipvalue.models.renewal import CNLifeTable, FeeSchedule

    if not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"The 'n' of make_register_history must be a positive integer. Got {n!r}.")
    rng = np.random.default_rng(seed)
    exported_on = pd.Timestamp(exported_on)
    n_owners = max(5, n // 15)
    owner_effect = rng.normal(0.0, 0.9, n_owners)
    owner_names = np.char.add(
        np.char.add("合成示例", _CITIES[rng.integers(0, len(_CITIES), n_owners)]),
        np.char.add(_TRADES[rng.integers(0, len(_TRADES), n_owners)], [f"科技有限公司{i:03d}" for i in range(n_owners)]),
    )
    weight = 1.0 / np.arange(1, n_owners + 1) ** 0.7  # a few owners hold many patents
    owner = rng.choice(n_owners, size=n, p=weight / weight.sum())

    kind = rng.choice(["invention", "utility_model", "design"], p=[0.5, 0.45, 0.05], size=n)
    inv, des = kind == "invention", kind == "design"
    filing = (pd.Timestamp("2006-01-01") + pd.to_timedelta(rng.uniform(0, 14 * 365.25, n), unit="D")).normalize()
    lag = np.where(inv, rng.gamma(6.0, 0.4, n), rng.gamma(4.0, 0.15, n))
    grant = (filing + pd.to_timedelta(lag * 365.25, unit="D")).normalize()
    grant = grant.where(grant <= exported_on)
    claims = np.where(inv, np.round(_quantile_draw(rng, _CLAIMS_Q, n)), np.where(des, 1, np.round(_quantile_draw(rng, _CLAIMS_Q, n) * 0.66)))
    claims = np.maximum(claims, 1)
    type_digit = {"invention": 1, "utility_model": 2, "design": 3}  # 申请号: year, type, serial, check digit
    appno = [f"{f.year}{type_digit[k]}{9000000 + i:07d}.{i % 10}" for i, (f, k) in enumerate(zip(filing, kind))]
    patents = pd.DataFrame({
        "patent_id": [f"SYN-CN{a.replace('.', '')}" for a in appno],
        "application_number": appno,
        "jurisdiction": "CN",
        "patent_type": kind,
        "filing_date": filing,
        "grant_date": grant,
        "claims_total": claims.astype(float),
        "claims_independent": np.minimum(claims, 1 + rng.binomial(2, 0.3, n)).astype(float),
        "backward_citations": np.round(_quantile_draw(rng, _BWD_Q, n)),
        "npl_citations": rng.poisson(np.where(inv, 1.2, 0.2)).astype(float),
        "ipc_main": np.array(_IPC_MAIN)[rng.integers(0, len(_IPC_MAIN), n)],
        "applicants": owner_names[owner],
        "applicant_type": "company",
        "inventor_count": (1 + rng.poisson(2.5, n)).astype(float),
        "data_origin": "synthetic",
    })

    schedule, table = FeeSchedule.load("cn-annual"), CNLifeTable.load()
    term = np.where(inv, 20, 10)  # all designs here were filed before 2021-06-01: 10 years
    due = schedule.due_dates(patents)
    anniversaries = np.array(schedule.due_years).astype(int)
    hazard = np.zeros(due.shape)
    for t, h in table.hazards.items():
        rows = kind == t
        ages = np.minimum(anniversaries, len(h)) - 1
        hazard[rows] = h[ages][None, :]
    score = owner_effect[owner] - 0.05 * (claims - 8)
    hazard = expit(logit(hazard) + score[:, None])
    payable = schedule.payable(patents, add_years(patents["filing_date"], term)) & (due <= exported_on.to_datetime64())
    alive = np.ones(n, dtype=bool)
    lapse_anniversary = np.full(n, np.nan)
    rows = []

    def event(i, date, code, status, info):
        rows.append((appno[i], pd.Timestamp(date), status, info, code))

    for k in range(due.shape[1]):  # a loop over the yearly stages, vectorised over patents
        at_risk = alive & payable[:, k]
        lapse = at_risk & (rng.random(n) < hazard[:, k])
        announced = pd.to_datetime(due[:, k]) + pd.to_timedelta(183 + rng.integers(60, 300, n), unit="D")
        restored = lapse & (rng.random(n) < 0.08)
        stated = rng.random(n) < 0.85
        for i in np.flatnonzero(lapse & (announced <= exported_on)):
            end = (filing[i] + pd.DateOffset(years=int(anniversaries[k]))).strftime("%Y.%m.%d")  # the anniversary itself
            info = f"未缴年费专利权终止 IPC(主分类)：{patents['ipc_main'][i]}；申请日：{filing[i]:%Y.%m.%d}；授权公告日：{grant[i]:%Y.%m.%d}" + (f"；终止日期：{end}" if stated[i] else "")
            event(i, announced[i], "CF01", "未缴年费专利权终止", info + "（合成示例 SYNTHETIC）")
            if restored[i]:
                event(i, announced[i] + pd.Timedelta(days=45), "RR01", "专利权的恢复", "恢复日：" + (announced[i] + pd.Timedelta(days=45)).strftime("%Y.%m.%d") + "（合成示例 SYNTHETIC）")
        ended = lapse & ~restored
        lapse_anniversary[ended & (announced <= exported_on)] = anniversaries[k]
        alive &= ~ended
    granted = np.flatnonzero(pd.notna(grant))
    for i in granted[rng.random(len(granted)) < 0.12]:  # pledges, half released
        opened = grant[i] + pd.Timedelta(days=int(rng.integers(200, 2500)))
        if opened <= exported_on:
            number = f"Y{opened.year}98{rng.integers(0, 10**7):07d}"
            event(i, opened, "PE01", "专利权质押合同登记的生效", f"登记号：{number}；出质人：{owner_names[owner[i]]}；质权人：合成示例银行（合成示例 SYNTHETIC）")
            closed = opened + pd.Timedelta(days=int(rng.integers(300, 1100)))
            if rng.random() < 0.5 and closed <= exported_on:
                event(i, closed, "PC01", "专利权质押合同登记的注销", f"登记号：{number}（合成示例 SYNTHETIC）")
    for i in granted[rng.random(len(granted)) < 0.06]:
        when = grant[i] + pd.Timedelta(days=int(rng.integers(100, 2000)))
        if when <= exported_on:
            event(i, when, "EE01", "专利实施许可合同备案的生效", f"备案号：X{when.year}98{rng.integers(0, 10**7):07d}；许可种类：{rng.choice(['普通许可', '独占许可'])}（合成示例 SYNTHETIC）")
    for i in granted[rng.random(len(granted)) < 0.05]:
        when = grant[i] + pd.Timedelta(days=int(rng.integers(100, 2000)))
        if when <= exported_on:
            event(i, when, "TR01", "专利权的转移", f"变更前权利人：{owner_names[owner[i]]}（合成示例 SYNTHETIC）")
    events = pd.DataFrame(rows, columns=list(REGISTER_HEADERS))
    events = events.sort_values(["申请号", "法律状态公告日", "事件代码"], kind="stable").reset_index(drop=True)
    events["法律状态公告日"] = events["法律状态公告日"].dt.strftime("%Y.%m.%d")
    return RegisterHistory(patents, events, pd.Series(lapse_anniversary, index=patents.index, name="lapse_anniversary"))
