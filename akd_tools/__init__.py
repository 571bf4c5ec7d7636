"""Operator tools above the service: the `akd` command line (`cli`), the `akd serve`
supervisor (`serve`), the REST client (`client`) and the demo (`demo`).

They may import every other package (akd_core, akd_service, app, worker); nothing imports them.
"""
