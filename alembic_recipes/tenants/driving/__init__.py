"""How a run is driven: tenant after tenant (``fleet``, ``serial``), in worker
processes (``parallel``), claimed by runners sharing a run (``claiming``,
``claims``), wave after wave (``waves``), or only planned (``plan``); and the
shared scope's run (``shared``).
"""
