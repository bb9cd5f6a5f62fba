"""Finance of exchange teachers (issue 18): the clusters' distance grid (:mod:`.grid`), the
monthly allowance (:mod:`.allowances`) and month-end closing (:mod:`.closing`). The transport
ledger itself stays in :mod:`backend.subsidy_service`; pricing is pure, in
:mod:`routing.allowance` and :mod:`routing.subsidy`."""
