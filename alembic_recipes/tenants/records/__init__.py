"""What a run records and reports.

``record`` is the run record table (a row per tenant), written as the run goes
by the ``journal``; ``repair`` marks a tenant a partial run left to repair;
``claim_table`` is the claims table of runners sharing a run; ``report`` is
the lines, failures and summary, with ``report_file`` (``-x report=PATH``) and
``progress`` (the bar or progress lines).
"""
